#!/usr/bin/env python3
"""Writes examples/data/sample_600x600.png: the 600x600 RGB image of the paper's measurement
(anyres 2x2, 5 partitions, 2880 visual tokens), used by hired_generate's examples and as
hired_bench's default image. A sky-to-grass gradient with the two "objects" of
make_sample.py (a red disc and a blue square) and some texture. Run by hand; needs numpy and
pillow."""
import argparse

import numpy as np
from PIL import Image

SIZE = 600


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="examples/data/sample_600x600.png")
    args = parser.parse_args()
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    img = np.zeros((SIZE, SIZE, 3))
    sky = y < 0.6
    img[sky] = np.stack([0.45 + 0.3 * y, 0.65 + 0.2 * y, 0.95 - 0.1 * y], -1)[sky]
    grass = ~sky
    img[grass] = np.stack([0.2 + 0.1 * x, 0.55 - 0.2 * (y - 0.6), 0.2 + 0 * x], -1)[grass]
    img += 0.04 * np.sin(40 * x + 13 * y)[..., None]  # texture
    disc = (y - 0.30) ** 2 + (x - 0.35) ** 2 < 0.10 ** 2
    img[disc] = (0.9, 0.15, 0.1)
    square = (abs(y - 0.75) < 0.06) & (abs(x - 0.70) < 0.06)
    img[square] = (0.1, 0.2, 0.85)
    Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8)).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
