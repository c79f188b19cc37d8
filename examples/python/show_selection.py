"""Which tokens HiRED keeps: the selection per partition, and an overlay of the image's
partitions (the full image, then the anyres tiles) with dropped patches dimmed.

    python examples/python/show_selection.py SAMPLE.safetensors IMAGE OUT.png [RATE]

SAMPLE holds the CLS attention rows of one image (init_cls_attn, final_cls_attn,
num_partitions, image_sizes), e.g. examples/data/sample_600x600.safetensors.
"""

import sys

import PIL.Image
import torch
from safetensors.torch import load_file
from transformers import LlavaNextImageProcessorPil

import hired

sample, image_path, out_path = load_file(sys.argv[1]), sys.argv[2], sys.argv[3]
config = hired.DropConfig(budget_rate=float(sys.argv[4]) if len(sys.argv) > 4 else 0.2)
selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], sample["num_partitions"],
                         sample["image_sizes"], config=config)
for p, budget in enumerate(selection.budgets.tolist()):
    print(f"partition {p}: keeps {budget:3d} of {selection.tokens}: {selection.kept_in(p)[:12].tolist()} ...")

# The partitions as LLaVA-Next's processor makes them (uint8, before normalisation).
processor = LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                       do_rescale=False, do_normalize=False)  # llava-v1.6
tiles = processor(images=[PIL.Image.open(image_path).convert("RGB")], return_tensors="pt")["pixel_values"][0]
side, tile = int(selection.tokens**0.5), tiles.shape[-1]
patch = tile // side
canvas = PIL.Image.new("RGB", (tile * tiles.shape[0] + 8 * (tiles.shape[0] - 1), tile), "white")
for p in range(len(selection.budgets)):
    pixels = tiles[p].permute(1, 2, 0).clamp(0, 255).to(torch.uint8)
    keep = torch.zeros(side * side, dtype=torch.bool)
    keep[selection.kept_in(p)] = True
    mask = keep.reshape(side, side).repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    dimmed = torch.where(mask[..., None], pixels, pixels // 4)
    canvas.paste(PIL.Image.fromarray(dimmed.numpy()), (p * (tile + 8), 0))
canvas.save(out_path)
print(f"wrote {out_path}")
