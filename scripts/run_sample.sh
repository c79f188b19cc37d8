#!/usr/bin/env bash
# make select-demo: hired_select on the bundled sample, explained.
set -euo pipefail
cd "$(dirname "$0")/.."
exe=${1:-build/hired_select}
sample=examples/data/sample_600x600.safetensors

cat <<'TEXT'
== hired_select on examples/data/sample_600x600.safetensors ==
One 600x600 image, LLaVA-Next anyres: the full image resized to 336x336 plus a 2x2 grid of
336-px tiles = 5 partitions x 576 patch tokens = 2880 visual tokens. The file holds the CLS
query's attention rows of ViT layers 0 (budget distribution) and 22 (selection), 16 heads
(synthetic: two bright objects, top-left and bottom-right). Budget: 20% -> 576 tokens.

-- exact mode (default): half the budget to the full image, the rest to the tiles in
   proportion to how much of the full image's salient area each tile covers --
TEXT
"$exe" "$sample" --budget-rate 0.2 --explain
cat <<'TEXT'

-- reference mode: the published code's arithmetic; tile shares come from flat bands of the
   full image's 24x24 grid (rows 0-5 -> tile 1, 6-11 -> tile 2, ...), not from where the
   tiles are, and the float32 remainder is lost --
TEXT
"$exe" "$sample" --budget-rate 0.2 --mode reference --explain
cat <<'TEXT'

-- the same selection as JSON (what tools consume), first 300 characters --
TEXT
"$exe" "$sample" --budget-rate 0.2 | cut -c1-300
echo "..."
