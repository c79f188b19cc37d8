#!/usr/bin/env python3
"""Writes examples/data/sample_600x600.safetensors: synthetic CLS-attention rows for one
600x600 image (anyres 2x2: 5 partitions of 576 patch tokens + CLS, 16 heads), the input of
`hired_select`. The image holds two bright "objects"; each partition's CLS attention peaks on
the tokens that see them, so the selection has something to find. Run by hand; needs numpy
and safetensors (pip install numpy safetensors)."""
import argparse

import numpy as np
from safetensors.numpy import save_file

SIDE, HEADS, TILE = 24, 16, 336
OBJECTS = [(0.30, 0.35, 0.10), (0.70, 0.75, 0.06)]  # (y, x, radius) in image coordinates


def saliency(y0, y1, x0, x1):
    """Object saliency at the centres of a SIDE x SIDE token grid covering [y0,y1) x [x0,x1)."""
    ys = y0 + (np.arange(SIDE) + 0.5) / SIDE * (y1 - y0)
    xs = x0 + (np.arange(SIDE) + 0.5) / SIDE * (x1 - x0)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    s = np.zeros_like(yy)
    for cy, cx, r in OBJECTS:
        s += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return s.reshape(-1)


def cls_rows(sal, rng, sharpness):
    logits = sharpness * sal[None, :] + rng.normal(0, 0.5, (HEADS, SIDE * SIDE))
    logits = np.concatenate([np.full((HEADS, 1), 2.0), logits], axis=1)  # key 0: CLS -> CLS
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="examples/data/sample_600x600.safetensors")
    ap.add_argument("--seed", type=int, default=2025)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    # 600x600 on LLaVA-v1.6 pinpoints: best 672x672, no padding, so tile (i, j) sees the image
    # quarter [i/2, (i+1)/2) x [j/2, (j+1)/2).
    regions = [(0, 1, 0, 1)] + [(i / 2, (i + 1) / 2, j / 2, (j + 1) / 2) for i in range(2) for j in range(2)]
    init = np.stack([cls_rows(saliency(*r), rng, 1.5) for r in regions])
    final = np.stack([cls_rows(saliency(*r), rng, 3.0) for r in regions])
    save_file({
        "init_cls_attn": init.astype(np.float16),
        "final_cls_attn": final.astype(np.float16),
        "num_partitions": np.array([5], dtype=np.int64),
        "grid_shapes": np.array([[2, 2]], dtype=np.int64),
        "image_sizes": np.array([[600, 600]], dtype=np.int64),
        "grid_pinpoints": np.array([[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
                                   dtype=np.int64),
    }, args.out, metadata={"generator": "scripts/make_sample.py", "seed": str(args.seed)})
    print(f"wrote {args.out}: init/final_cls_attn {init.shape} float16")


if __name__ == "__main__":
    main()
