#!/usr/bin/env bash
# Installs what hired needs, and only what is missing: Debian's -dev packages, and LibTorch
# from the pinned torch wheel into the project's own virtual environment (.venv).
# Idempotent: a second run changes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch 2.15.0 is built with CUDA 13.2; the local nvcc (CUDA 13.0) shares its major version,
# so hired's kernels and LibTorch load one CUDA runtime. See README "Dependencies".
TORCH_VERSION=2.15.0
DEBIAN_PACKAGES=(cmake g++ make python3-venv libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev
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
echo "setup: ready ($(.venv/bin/python -W ignore -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'))"
