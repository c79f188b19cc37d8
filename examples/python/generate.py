"""LLaVA-Next with HiRED at 20% in Hugging Face transformers: load, apply, generate.

    python examples/python/generate.py CHECKPOINT_DIR IMAGE [PROMPT]
"""

import sys

import PIL.Image
import torch
from transformers import LlavaNextForConditionalGeneration, LlavaNextProcessor

import hired
import hired.transformers

checkpoint, image_path = sys.argv[1], sys.argv[2]
prompt = sys.argv[3] if len(sys.argv) > 3 else "USER: <image>\nWhat is shown in this image? ASSISTANT:"
model = LlavaNextForConditionalGeneration.from_pretrained(checkpoint, dtype=torch.float32)
processor = LlavaNextProcessor.from_pretrained(checkpoint)
handle = hired.transformers.apply(model, processor, hired.DropConfig(budget_rate=0.2))

inputs = processor(images=[PIL.Image.open(image_path)], text=[prompt], return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=15, do_sample=False)
kept = handle.last_selection.budgets.sum().item()
print(f"kept {kept} visual tokens; generated: {output[0, inputs['input_ids'].shape[1]:].tolist()}")
print(processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))
