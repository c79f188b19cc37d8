"""hired.transformers.apply on tiny llava-hf checkpoints that transformers wrote itself
(tests/fixtures/llava): stock at rate 1.0, hired_generate's selection and logits at 0.2,
generate() with batches and several images, the processor's counts, and the refusals."""

from __future__ import annotations

import json
import subprocess

import PIL.Image
import pytest
import torch
from safetensors.torch import load_file

import hired
import hired.transformers
from conftest import FIXTURES, make_llava15_processor, make_processor, tool

CHECKPOINT = FIXTURES / "vicuna_tiny"
IMAGES = FIXTURES / "images"
PROMPT = "USER: <image>\nWhat is shown in this image? ASSISTANT:"


@pytest.fixture(scope="module")
def model():
    from transformers import LlavaNextForConditionalGeneration

    return LlavaNextForConditionalGeneration.from_pretrained(str(CHECKPOINT), dtype=torch.float32).eval()


@pytest.fixture()
def processor():
    return make_processor(CHECKPOINT)


def image(name):
    return PIL.Image.open(IMAGES / name).convert("RGB")


@torch.no_grad()
def logits(model, inputs):
    return model(**inputs).logits[:, -1].float()


@pytest.fixture()
def applied(model, processor):
    handles = []

    def apply(config):
        handles.append(hired.transformers.apply(model, processor, config))
        return handles[-1]

    yield apply
    for handle in handles:
        handle.remove()


def test_rate_one_is_stock_and_remove_restores_it_to_the_bit(model, processor, applied):
    inputs = processor(images=[image("wide_150x380.png")], text=[PROMPT], return_tensors="pt")
    stock = logits(model, inputs)
    handle = applied(hired.DropConfig(budget_rate=1.0))
    again = processor(images=[image("wide_150x380.png")], text=[PROMPT], return_tensors="pt")
    assert torch.equal(again["input_ids"], inputs["input_ids"])  # the same count as stock
    assert (logits(model, again) - stock).abs().max() <= 1e-6
    assert handle.last_selection is not None
    handle.remove()
    assert torch.equal(logits(model, inputs), stock)
    assert "get_image_features" not in vars(model.model)


def test_twenty_percent_keeps_what_hired_generate_keeps(model, processor, applied, tmp_path):
    dump = tmp_path / "dump.safetensors"
    result = subprocess.run(
        [tool("hired_generate"), "--model", CHECKPOINT, "--image", IMAGES / "wide_150x380.png", "--prompt",
         PROMPT, "--budget-rate", "0.2", "--max-new-tokens", "6", "--ignore-eos", "--dump", dump],
        check=True, capture_output=True, text=True,
    )
    theirs = load_file(str(dump))
    generated = json.loads(result.stdout.strip().splitlines()[-1])["generated_ids"]

    handle = applied(hired.DropConfig(budget_rate=0.2))
    inputs = processor(images=[image("wide_150x380.png")], text=[PROMPT], return_tensors="pt")
    ours = logits(model, inputs)[0]
    selection = handle.last_selection
    assert torch.equal(selection.kept, theirs["kept"])
    assert torch.equal(selection.kept_offsets, theirs["kept_offsets"])
    assert (ours - theirs["logits"]).abs().max() <= 1e-4
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    assert out[0, inputs["input_ids"].shape[1]:].tolist() == generated


def test_two_images_in_one_prompt_keep_and_predict_what_hired_generate_does(model, processor, applied, tmp_path):
    prompt = "USER: <image><image>\nCompare them. ASSISTANT:"
    files = [IMAGES / "wide_150x380.png", IMAGES / "tall_500x240.png"]
    dump = tmp_path / "two.safetensors"
    subprocess.run(
        [tool("hired_generate"), "--model", CHECKPOINT, "--image", files[0], "--image", files[1], "--prompt", prompt,
         "--budget-rate", "0.2", "--max-new-tokens", "1", "--dump", dump],
        check=True, capture_output=True, text=True,
    )
    theirs = load_file(str(dump))
    handle = applied(hired.DropConfig(budget_rate=0.2))
    inputs = processor(images=[image(f.name) for f in files], text=[prompt], return_tensors="pt")
    ours = logits(model, inputs)[0]
    assert torch.equal(handle.last_selection.kept, theirs["kept"])
    assert torch.equal(handle.last_selection.kept_offsets, theirs["kept_offsets"])
    assert (ours - theirs["logits"]).abs().max() <= 1e-4


def test_processor_expands_each_image_to_hireds_count(model, processor, applied):
    config = hired.DropConfig(budget_rate=0.2)
    applied(config)
    inputs = processor(images=[image("tall_500x240.png")], text=[PROMPT], return_tensors="pt")
    text_only = processor.tokenizer(PROMPT.replace("<image>", ""), return_tensors="pt")["input_ids"]
    expected = hired.num_image_tokens((500, 240), config) + text_only.shape[1]
    assert inputs["input_ids"].shape[1] == expected
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == hired.num_image_tokens((500, 240), config)


def test_generate_with_a_batch_of_different_sizes_and_two_images_in_one_prompt(model, processor, applied):
    processor.tokenizer.padding_side = "left"
    applied(hired.DropConfig(budget_rate=0.2))
    batch = processor(images=[image("wide_150x380.png"), image("small_300x260.png")],
                      text=[PROMPT, "USER: <image>\nAnd this one? ASSISTANT:"], padding=True, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=False, min_new_tokens=4)
    assert out.shape == (2, batch["input_ids"].shape[1] + 4)
    # Each row as it generates alone.
    for row, (name, text) in enumerate([("wide_150x380.png", PROMPT), ("small_300x260.png",
                                                                      "USER: <image>\nAnd this one? ASSISTANT:")]):
        alone = processor(images=[image(name)], text=[text], return_tensors="pt")
        single = model.generate(**alone, max_new_tokens=4, do_sample=False, min_new_tokens=4)
        assert out[row, -4:].tolist() == single[0, -4:].tolist()
    two = processor(images=[image("wide_150x380.png"), image("tall_500x240.png")],
                    text=["USER: <image><image>\nCompare them. ASSISTANT:"], return_tensors="pt")
    out = model.generate(**two, max_new_tokens=3, do_sample=False, min_new_tokens=3)
    assert out.shape[1] == two["input_ids"].shape[1] + 3


def test_apply_refuses_what_it_cannot_do_by_name(model, processor):
    with pytest.raises(TypeError, match="model"):
        hired.transformers.apply(torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="processor"):
        hired.transformers.apply(model, make_llava15_processor(LLAVA15))
    with pytest.raises(ValueError, match="mode 'reference'"):
        hired.transformers.apply(model, processor, hired.DropConfig(mode="reference"))
    with pytest.raises(ValueError, match="kept_rows"):
        hired.transformers.apply(model, processor, hired.DropConfig(newline="kept_rows"))
    with pytest.raises(TypeError, match="config"):
        hired.transformers.apply(model, processor, {"budget_rate": 0.2})
    handle = hired.transformers.apply(model, processor)
    try:
        with pytest.raises(ValueError, match="applied already"):
            hired.transformers.apply(model, processor)
    finally:
        handle.remove()
    assert "_get_number_of_features" not in vars(processor)


# --- LLaVA-1.5 (LlavaForConditionalGeneration): one centre-cropped partition, no newline rows ---

LLAVA15 = FIXTURES / "llava15_7b_tiny"


@pytest.fixture(scope="module")
def llava15():
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(str(LLAVA15), dtype=torch.float32).eval()


def test_llava15_at_rate_one_is_stock_and_remove_restores_it(llava15):
    processor = make_llava15_processor(LLAVA15)
    inputs = processor(images=[image("tall_500x240.png")], text=[PROMPT], return_tensors="pt")
    stock = logits(llava15, inputs)
    handle = hired.transformers.apply(llava15, processor, hired.DropConfig(budget_rate=1.0))
    try:
        again = processor(images=[image("tall_500x240.png")], text=[PROMPT], return_tensors="pt")
        assert torch.equal(again["input_ids"], inputs["input_ids"])  # 576 placeholders, as stock
        assert (logits(llava15, again) - stock).abs().max() <= 1e-6
    finally:
        handle.remove()
    assert torch.equal(logits(llava15, inputs), stock)
    assert "replace_image_token" not in vars(processor)


def test_llava15_at_twenty_percent_keeps_and_predicts_what_hired_generate_does(llava15, tmp_path):
    dump = tmp_path / "llava15.safetensors"
    result = subprocess.run(
        [tool("hired_generate"), "--model", LLAVA15, "--image", IMAGES / "tall_500x240.png", "--prompt", PROMPT,
         "--budget-rate", "0.2", "--max-new-tokens", "6", "--ignore-eos", "--dump", dump],
        check=True, capture_output=True, text=True,
    )
    theirs = load_file(str(dump))
    generated = json.loads(result.stdout.strip().splitlines()[-1])["generated_ids"]
    processor = make_llava15_processor(LLAVA15)
    handle = hired.transformers.apply(llava15, processor, hired.DropConfig(budget_rate=0.2))
    try:
        inputs = processor(images=[image("tall_500x240.png")], text=[PROMPT], return_tensors="pt")
        count = hired.num_image_tokens((336, 336), hired.DropConfig(budget_rate=0.2, newline="none"), grid_pinpoints=[])
        assert count == 115  # floor(576 * 0.2): no newline rows in LLaVA-1.5
        assert int((inputs["input_ids"] == llava15.config.image_token_id).sum()) == count
        assert (logits(llava15, inputs)[0] - theirs["logits"]).abs().max() <= 1e-4
        assert torch.equal(handle.last_selection.kept, theirs["kept"])
        out = llava15.generate(**inputs, max_new_tokens=6, do_sample=False, min_new_tokens=6)
        assert out[0, inputs["input_ids"].shape[1]:].tolist() == generated
    finally:
        handle.remove()
