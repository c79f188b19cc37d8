"""Which tokens HiRED keeps: the selection per partition, and hired's overlay of the image's
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

# The partitions as LLaVA-Next's processor cuts them (uint8, before rescale and normalisation),
# drawn by hired's C++ overlay: the picture hired_select --overlay writes.
processor = LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                       do_rescale=False, do_normalize=False)  # llava-v1.6
tiles = processor(images=[PIL.Image.open(image_path).convert("RGB")], return_tensors="pt")["pixel_values"]
PIL.Image.fromarray(hired.draw_selection(selection, tiles[0].to(torch.uint8)).numpy()).save(out_path)
print(f"wrote {out_path}")
