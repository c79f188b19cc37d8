#!/usr/bin/env bash
# Prepares, on a machine with Debian's package mirror, what scripts/gpu_check.sh needs on a GPU
# machine that reaches no network: the Debian packages of hired's build dependencies (fmt,
# nlohmann-json, GoogleTest, Google Benchmark, stb, sentencepiece; about 2.6 MB) downloaded
# into .gpu-bundle/debs (git-ignored). gpu_check.sh unpacks them there (dpkg -x, no install)
# and builds against them; LibTorch, nvcc and CMake come from the GPU machine itself.
#
#   scripts/gpu_bundle.sh          then carry .gpu-bundle to the GPU machine with the tree
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(libfmt-dev libfmt9 nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
          libbenchmark1debian libstb-dev libstb0 libsentencepiece-dev libsentencepiece0)
rm -rf .gpu-bundle/debs
mkdir -p .gpu-bundle/debs
# apt-get download writes into the current directory; _apt cannot write to every folder.
(cd .gpu-bundle/debs && apt-get download "${PACKAGES[@]}" 2>&1 | grep -v "unsandboxed" || true)
count=$(compgen -G ".gpu-bundle/debs/*.deb" | wc -l)
if ((count != ${#PACKAGES[@]})); then
  echo "gpu_bundle: expected ${#PACKAGES[@]} packages, got $count (apt-get update first?)" >&2
  exit 1
fi
echo "gpu_bundle: $count packages, $(du -sh .gpu-bundle/debs | cut -f1) in .gpu-bundle/debs"
