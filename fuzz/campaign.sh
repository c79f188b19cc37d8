#!/usr/bin/env bash
# The long fuzzing campaign: each target of fuzz/ in turn, niced, for RUNS executions (default
# 1,000,000; libFuzzer's -seed SEED, default 1) from a copy of its seed corpus, with the same
# limits as the fuzz.* tests. Prints one summary line per target; libFuzzer's log, the corpus it
# grew and any crashing input stay in OUT.
#   fuzz/campaign.sh [BUILD_DIR (build)] [OUT (BUILD_DIR/fuzz/campaign)] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${2:-$build/fuzz/campaign}
shift $(( $# < 2 ? $# : 2 ))
runs=${RUNS:-1000000}
targets=("$@")
((${#targets[@]})) || targets=(config_json image pixel_values safetensors selection_input tokenizer weight_index)
# target -> -max_len and dictionary, as cmake/HiredFuzz.cmake gives the tests.
declare -A max_len=([config_json]=8192 [image]=8192 [pixel_values]=16384 [safetensors]=8192
                    [selection_input]=8192 [tokenizer]=16384 [weight_index]=16384)
declare -A dict=([config_json]=json [image]=image [pixel_values]=safetensors [safetensors]=safetensors
                 [selection_input]=safetensors [weight_index]=json)
export UBSAN_OPTIONS=print_stacktrace=1
if command -v llvm-symbolizer >/dev/null; then export ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer); fi
for target in "${targets[@]}"; do
  work="$out/$target"
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp fuzz/corpus/"$target"/* "$work/corpus/"
  args=(-runs="$runs" -seed="${SEED:-1}" -max_len="${max_len[$target]}" -timeout=30 -rss_limit_mb=2048
        -malloc_limit_mb=512 -artifact_prefix="$work/artifacts/" -print_final_stats=1)
  [[ -n "${dict[$target]:-}" ]] && args+=(-dict=fuzz/"${dict[$target]}".dict)
  start=$(date +%s)
  status=0
  nice -n 19 "$build/fuzz/fuzz_$target" "${args[@]}" "$work/corpus" >"$work/log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - start ))
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$work/log" | tail -1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log")
  echo "$target: status $status, ${execs:-?} executions in ${seconds} s, peak RSS ${rss:-?} MB;" \
       "${done_line:-no DONE line}; artifacts: $(ls "$work/artifacts" | tr '\n' ' ')"
done
