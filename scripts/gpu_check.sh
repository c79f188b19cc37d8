#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in one command: build hired with its CUDA kernels, run the
# GPU tests (TokenDropper on CUDA tensors against the CPU path, label gpu), the emulated kernel
# tests (label emulation), the adapter's tests, the selection-overhead benchmark on the GPU
# (hired's kernels against the published formulation, both on CUDA tensors) and the paper's
# measurement on the llava-next-7b preset (random fp16 weights, about 14 GB); where the Python
# environment has transformers and pytest, also the Python package's op tests (opcheck on CUDA)
# and benchmarks/hf_bench.py in fp16. Then a short table. HIRED_GPU_BENCH=0 skips the 7B run.
#
#   scripts/gpu_check.sh [BUILD_DIR]     (default build-gpu; CUDA_ARCHS=90 to pick archs)
#
# Needs nvcc on PATH, a CUDA LibTorch (.venv from scripts/setup.sh, else python3's torch) and
# hired's Debian build dependencies: installed, or unpacked from .gpu-bundle/debs, which
# scripts/gpu_bundle.sh fills on a machine with a package mirror (for GPU machines without
# a network; carry .gpu-bundle with the tree).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
build=${1:-build-gpu}
archs=${CUDA_ARCHS:-80;90}
log=$build/gpu_check
mkdir -p "$log"

prefix=()
if compgen -G ".gpu-bundle/debs/*.deb" >/dev/null; then
  root=$PWD/.gpu-bundle/root
  rm -rf "$root" && mkdir -p "$root"
  for deb in .gpu-bundle/debs/*.deb; do
    if command -v dpkg >/dev/null; then
      dpkg -x "$deb" "$root" || exit 1
    else  # a .deb is an ar archive holding data.tar.*
      scratch=$(mktemp -d) && (cd "$scratch" && ar x "$OLDPWD/$deb" && tar -xf data.tar.* -C "$root") \
        || exit 1
      rm -rf "$scratch"
    fi
  done
  prefix=("-DCMAKE_PREFIX_PATH=$root/usr")
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "dependencies: unpacked from .gpu-bundle/debs"
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader \
  | sed 's/^/GPU: /' || echo "GPU: none visible (the gpu tests will skip)"

step() {  # step NAME COMMAND...: runs it, output to $log/NAME.log, remembers the status
  local name=$1
  shift
  echo "== $name"
  if "$@" >"$log/$name.log" 2>&1; then status[$name]=ok; else status[$name]="FAILED (see $log/$name.log)"; fi
}
declare -A status

step configure cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DHIRED_TESTS=ON -DHIRED_CUDA=ON \
  -DHIRED_SM61=OFF "-DHIRED_CUDA_ARCHITECTURES=$archs" \
  "${prefix[@]}"
# Each label's programs (tests/CMakeLists.txt: hired_tests_<label>), the benchmarks and the
# CLIs the Python tests compare with.
step build cmake --build "$build" -j "$(nproc)" --target hired_tests_gpu hired_tests_emulation \
  hired_tests_adapter hired_selection_bench hired_bench hired_select hired_generate
step gpu_tests ctest --test-dir "$build" -L gpu --output-on-failure -V --no-tests=error
step emulation ctest --test-dir "$build" -L emulation -j "$(nproc)" --output-on-failure --no-tests=error
step adapter ctest --test-dir "$build" -L adapter -j "$(nproc)" --output-on-failure --no-tests=error
# On the GPU when there is one (else the CPU, so the script also runs on a machine without).
bench_device=cpu
nvidia-smi -L >/dev/null 2>&1 && bench_device=cuda
step benchmark env HIRED_BENCH_DEVICE=$bench_device "$build/benchmarks/hired_selection_bench" \
  --benchmark_filter='BM_Hired|BM_Reference' --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true
if [[ $bench_device == cuda && ${HIRED_GPU_BENCH:-1} != 0 ]]; then
  step bench_7b "$build/benchmarks/hired_bench" --preset llava-next-7b --batch 1,4 --budgets 1.0,0.2 \
    --json "$log/bench_7b.json"
else
  status[bench_7b]="skipped (no GPU, or HIRED_GPU_BENCH=0)"
fi

# The Python package, built against this environment's torch as the README says.
py=python3
[[ -x .venv/bin/python ]] && py=.venv/bin/python
if "$py" -c "import torch, transformers, pytest, safetensors, PIL, scikit_build_core" 2>/dev/null; then
  step python_install "$py" -m pip install --no-build-isolation --no-deps --quiet .
  step python_ops env HIRED_SELECT_EXE="$build/apps/hired_select" HIRED_GENERATE_EXE="$build/apps/hired_generate" \
    "$py" -m pytest -q -rs -p no:cacheprovider python/tests/test_ops.py python/tests/test_transformers.py
  if [[ $bench_device == cuda ]]; then
    step hf_bench "$py" benchmarks/hf_bench.py --device cuda --dtype fp16 --hired-bench "$build/benchmarks/hired_bench"
  else
    status[hf_bench]="skipped (no GPU)"
  fi
else
  for name in python_install python_ops hf_bench; do status[$name]="skipped ($py lacks torch, transformers, pytest, safetensors, PIL or scikit-build-core)"; done
fi

summary() {  # the "N tests passed / skipped" line of a ctest log
  grep -Eo '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$log/$1.log" | tail -1
  grep -c '(Skipped)$' "$log/$1.log" | sed 's/$/ skipped/'
}

echo
printf '%-15s %s\n' step result
printf '%-15s %s\n' --------------- ------------------------------------------------------------
for name in configure build; do printf '%-15s %s\n' "$name" "${status[$name]}"; done
for name in gpu_tests emulation adapter; do
  printf '%-15s %s (%s)\n' "$name" "${status[$name]}" "$(summary "$name" | paste -sd ';' | sed 's/;/; /g')"
done
for name in benchmark bench_7b python_install python_ops hf_bench; do
  printf '%-15s %s\n' "$name" "${status[$name]}"
done
grep -h 'HIRED_GPU_TIME' "$log/gpu_tests.log" | sed 's/^.*HIRED_GPU_TIME /gpu time        /'
grep -E '_median' "$log/benchmark.log" | awk '{printf "bench           %-45s %s %s\n", $1, $2, $3}'
[[ -f $log/bench_7b.log ]] && grep -E '^ +[0-9]+ +[0-9]+%' "$log/bench_7b.log" | sed 's/^/7b /'
[[ -f $log/python_ops.log ]] && tail -1 "$log/python_ops.log" | sed 's/^/python          /'
[[ -f $log/hf_bench.log ]] && grep -E '^ +[0-9]+ (transformers|hired)' "$log/hf_bench.log" | sed 's/^/hf /'

for s in "${status[@]}"; do [[ $s == ok || $s == skipped* ]] || exit 1; done
