"""hired.vllm inside vLLM's engine, in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), on a
tiny random LLaVA-Next written at test time (tests/fixtures/llava/random_checkpoint.py):
placeholder counts, greedy parity with hired.transformers.apply and with stock transformers
(fp32), a batch of images of different sizes, two images in one prompt, a repeated image,
chunked prefill, and the refusals; LLaVA-1.5 (HiredLlavaForConditionalGeneration) too. The entry point, `vllm serve` and tensor parallelism: test_vllm_serve.py,
test_vllm_tp.py."""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: starts in seconds
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

import random

import numpy as np
import PIL.Image
import pytest
import torch

import hired
import hired.transformers
import hired.vllm
from conftest import FIXTURES, SAMPLE_IMAGE
from random_checkpoint import IMAGE_TOKEN

HIRED = "HiredLlavaNextForConditionalGeneration"
HIRED_LLAVA15 = "HiredLlavaForConditionalGeneration"
RATE = 0.2
NEW_TOKENS = 8
CHUNK = 512  # the HiRED engine's prefill chunk: every prompt with an image is prefilled in chunks
PROMPT = "USER: <image>\nWhat is shown in this image? ASSISTANT:"
TWO_IMAGES = "USER: <image>\n<image>\nCompare these images? ASSISTANT:"


def image(name: str) -> PIL.Image.Image:
    return PIL.Image.open(FIXTURES / "images" / name).convert("RGB")


def gradient(height: int, width: int) -> PIL.Image.Image:
    """A smooth image with a hard edge, of any size (for the grids no fixture image has)."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x > width // 3) * 200], -1)
    return PIL.Image.fromarray(rgb.astype(np.uint8))


# One image per LLaVA-v1.6 grid (rows x columns): 2x2, 1x2, 2x1, 1x3, 3x1.
GRID_IMAGES = {
    "2x2": lambda: PIL.Image.open(SAMPLE_IMAGE).convert("RGB"),
    "1x2": lambda: image("wide_150x380.png"),
    "2x1": lambda: image("tall_500x240.png"),
    "1x3": lambda: gradient(200, 900),
    "3x1": lambda: gradient(900, 200),
}


def overrides(architecture=HIRED, **settings) -> dict:
    return {"architectures": [architecture], "hired": settings}


def engine(checkpoint, **kwargs):
    from vllm import LLM

    return LLM(model=str(checkpoint), enforce_eager=True, max_model_len=4096, dtype="float32", seed=0, **kwargs)


@pytest.fixture(scope="module")
def stock_llm(vllm_checkpoint):
    return engine(vllm_checkpoint)


@pytest.fixture(scope="module")
def hired_llm(vllm_checkpoint):
    return engine(vllm_checkpoint, hf_overrides=overrides(budget_rate=RATE), max_num_batched_tokens=CHUNK)


def transformers_model(checkpoint):
    """(model, processor) of a checkpoint in transformers, fp32."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(str(checkpoint))


@pytest.fixture(scope="module")
def hf(vllm_checkpoint):
    return transformers_model(vllm_checkpoint)


def vllm_greedy(llm, requests):
    """[(prompt ids, generated ids)] of (text, images) requests, run as one batch."""
    from vllm import SamplingParams

    prompts = [{"prompt": text, "multi_modal_data": {"image": images if len(images) > 1 else images[0]}}
               for text, images in requests]
    outputs = llm.generate(prompts, SamplingParams(max_tokens=NEW_TOKENS, temperature=0.0, ignore_eos=True),
                           use_tqdm=False)
    return [(list(o.prompt_token_ids), list(o.outputs[0].token_ids)) for o in outputs]


@torch.no_grad()
def hf_greedy(hf, text, images, config=None):
    """(prompt ids, generated ids, the selection) of one request alone in transformers, stock
    or with hired.transformers.apply: prefill, then NEW_TOKENS argmax steps over the KV cache
    (EOS never stops it, as vLLM's ignore_eos)."""
    model, processor = hf
    handle = hired.transformers.apply(model, processor, config) if config else None
    try:
        inputs = processor(images=images, text=[text], return_tensors="pt")
        output = model(**inputs, use_cache=True)
        generated = []
        for _ in range(NEW_TOKENS):
            token = output.logits[:, -1].argmax(-1)
            generated.append(int(token))
            output = model(input_ids=token[:, None], past_key_values=output.past_key_values, use_cache=True)
        return inputs["input_ids"][0].tolist(), generated, handle and handle.last_selection
    finally:
        if handle:
            handle.remove()


def image_tokens(prompt_ids) -> int:
    return sum(1 for t in prompt_ids if t == IMAGE_TOKEN)


def hired_count(img: PIL.Image.Image, config: hired.DropConfig) -> int:
    return hired.num_image_tokens((img.height, img.width), config)


def processing_info(checkpoint, hf_overrides=None):
    """The processing info vLLM builds for a model config, without an engine (plugins loaded
    as an engine loads them: through the entry point)."""
    from vllm.config import ModelConfig
    from vllm.multimodal import MULTIMODAL_REGISTRY
    from vllm.plugins import load_general_plugins

    load_general_plugins()

    return MULTIMODAL_REGISTRY.create_processor(ModelConfig(model=str(checkpoint), hf_overrides=hf_overrides or {})).info


def test_counts_are_hireds_for_the_engines_settings(vllm_checkpoint):
    """The placeholder count of an image is hired.num_image_tokens for the settings in the
    model's HF config; at rate 1.0 it is stock vLLM's own count, for any size and grid."""
    rng = random.Random(3)
    sizes = [(600, 600), (150, 380), (500, 240), (200, 900), (900, 200), (336, 336), (1, 1), (3000, 17)]
    sizes += [(rng.randint(1, 2000), rng.randint(1, 2000)) for _ in range(100)]
    stock = processing_info(vllm_checkpoint)
    at_one = processing_info(vllm_checkpoint, overrides(budget_rate=1.0))
    for height, width in sizes:
        expected = stock.get_num_image_tokens(image_width=width, image_height=height)
        assert at_one.get_num_image_tokens(image_width=width, image_height=height) == expected, (height, width)
    pinpoints = [[336, 336], [336, 672], [672, 336], [672, 672]]
    for settings, pins in [
        ({"budget_rate": 0.4}, None), ({"budget_rate": 0.1, "alpha": 0.0}, None),
        ({"budget_tokens": 100, "newline": "none"}, None), ({}, None), ({"budget_rate": 0.2}, pinpoints),
    ]:
        extra = {"image_grid_pinpoints": pins} if pins else {}
        info = processing_info(vllm_checkpoint, {**overrides(**settings), **extra})
        config = hired.DropConfig(**settings)
        for height, width in sizes[:20]:
            assert info.get_num_image_tokens(image_width=width, image_height=height) == hired.num_image_tokens(
                (height, width), config, pins), (settings, pins, height, width)


def test_stock_engine_is_stock_vllm_and_equals_transformers(stock_llm, hf):
    """No override: vLLM's own model and count (2928 rows for 600x600), and stock transformers'
    greedy ids."""
    assert stock_llm.apply_model(lambda model: type(model).__name__) == ["LlavaNextForConditionalGeneration"]
    img = GRID_IMAGES["2x2"]()
    [(prompt, generated)] = vllm_greedy(stock_llm, [(PROMPT, [img])])
    hf_prompt, hf_generated, _ = hf_greedy(hf, PROMPT, [img])
    assert image_tokens(prompt) == 2928
    assert (prompt, generated) == (hf_prompt, hf_generated)


def test_hired_keeps_the_tokens_and_ids_of_hired_transformers(hired_llm, hf):
    img = GRID_IMAGES["2x2"]()
    img.putpixel((0, 0), (1, 2, 3))  # an image no cache holds: the last image batch is this one
    config = hired.DropConfig(budget_rate=RATE)
    [(prompt, generated)] = vllm_greedy(hired_llm, [(PROMPT, [img])])
    hf_prompt, hf_generated, hf_selection = hf_greedy(hf, PROMPT, [img], config)
    [selection] = hired_llm.apply_model(lambda model: model.last_selection)
    assert image_tokens(prompt) == hired_count(img, config) == 624
    assert len(prompt) > CHUNK  # prefilled in two chunks
    assert torch.equal(selection.kept_offsets, hf_selection.kept_offsets)
    assert torch.equal(selection.kept, hf_selection.kept)
    assert (prompt, generated) == (hf_prompt, hf_generated)


def test_a_batch_of_every_grid_equals_each_request_alone_in_transformers(hired_llm, hf):
    """Continuous batching of images of different sizes (every v1.6 grid), each prompt with
    hired's count, each answer that of the request alone."""
    config = hired.DropConfig(budget_rate=RATE)
    requests = [(PROMPT, [make()]) for make in GRID_IMAGES.values()]
    for (text, images), (prompt, generated) in zip(requests, vllm_greedy(hired_llm, requests)):
        assert image_tokens(prompt) == hired_count(images[0], config)
        hf_prompt, hf_generated, _ = hf_greedy(hf, text, images, config)
        assert (prompt, generated) == (hf_prompt, hf_generated)


def test_two_images_in_one_prompt_and_a_repeated_image(hired_llm, hf):
    """Two different images in one prompt; the same image twice in one prompt; and the same
    image in two requests of one batch (vLLM's multimodal cache answers the second)."""
    config = hired.DropConfig(budget_rate=RATE)
    wide, tall = GRID_IMAGES["1x2"](), GRID_IMAGES["2x1"]()
    requests = [(TWO_IMAGES, [wide, tall]), (TWO_IMAGES, [tall, tall]), (PROMPT, [tall])]
    results = vllm_greedy(hired_llm, requests)
    for (text, images), (prompt, generated) in zip(requests, results):
        assert image_tokens(prompt) == sum(hired_count(img, config) for img in images)
        hf_prompt, hf_generated, _ = hf_greedy(hf, text, images, config)
        assert (prompt, generated) == (hf_prompt, hf_generated)


@pytest.mark.parametrize(
    "settings, culprit",
    [
        ({"budget_rate": 0.0}, "budget_rate"),
        ({"alpha": 2.0}, "alpha"),
        ({"budget_rate": 0.2, "rate": 0.3}, "hired.rate: unknown setting"),
        ({"mode": "reference"}, "mode 'reference'"),
        ({"newline": "kept_rows"}, "newline 'kept_rows'"),
    ],
)
def test_a_bad_setting_stops_the_engine_naming_it(vllm_checkpoint, settings, culprit):
    with pytest.raises(ValueError, match=culprit):
        engine(vllm_checkpoint, hf_overrides=overrides(**settings))


def test_settings_are_read_per_config_and_validated():
    class Config:
        pass

    config = Config()
    assert hired.vllm.drop_config(config) == hired.DropConfig()  # no "hired": the defaults
    config.hired = {"budget_tokens": 64, "alpha": 0.25, "newline": "none"}
    assert hired.vllm.drop_config(config) == hired.DropConfig(budget_tokens=64, alpha=0.25, newline="none")
    for bad, culprit in [(0.2, "hired: 0.2; expected an object"), ({"mode": 3}, "mode"),
                         ({"budget_rate": 0.2, "budget_tokens": 5}, "budget_tokens")]:
        config.hired = bad
        with pytest.raises(ValueError, match=culprit):
            hired.vllm.drop_config(config)


def test_llava15_counts_are_its_kept_tokens(vllm_llava15_checkpoint):
    """LLaVA-1.5: one centre-cropped partition and no newline rows, so every image's count is
    its kept tokens (whatever the newline setting): at rate 1.0 stock vLLM's 576."""
    stock = processing_info(vllm_llava15_checkpoint)
    for settings, expected in [({"budget_rate": 1.0}, 576), ({"budget_rate": 0.2}, 115),
                               ({"budget_tokens": 50, "newline": "every_row"}, 50)]:
        info = processing_info(vllm_llava15_checkpoint, overrides(HIRED_LLAVA15, **settings))
        for height, width in [(600, 600), (150, 380), (2000, 7)]:
            assert stock.get_num_image_tokens(image_width=width, image_height=height) == 576
            assert info.get_num_image_tokens(image_width=width, image_height=height) == expected


def test_llava15_keeps_the_tokens_and_ids_of_hired_transformers(vllm_llava15_checkpoint):
    """LLaVA-1.5 with HiRED: a batch of images of different sizes and a prompt with two images,
    each answer that of the request alone under hired.transformers.apply; the last image batch's
    kept tokens those transformers keeps."""
    llm = engine(vllm_llava15_checkpoint, hf_overrides=overrides(HIRED_LLAVA15, budget_rate=RATE))
    hf15 = transformers_model(vllm_llava15_checkpoint)
    config = hired.DropConfig(budget_rate=RATE)
    wide, tall = GRID_IMAGES["1x2"](), GRID_IMAGES["2x1"]()
    requests = [(PROMPT, [GRID_IMAGES["2x2"]()]), (PROMPT, [wide]), (TWO_IMAGES, [wide, tall])]
    for (text, images), (prompt, generated) in zip(requests, vllm_greedy(llm, requests)):
        hf_prompt, hf_generated, _ = hf_greedy(hf15, text, images, config)
        assert image_tokens(prompt) == 115 * len(images)
        assert (prompt, generated) == (hf_prompt, hf_generated)
    new = GRID_IMAGES["1x3"]()  # an image no cache holds: the last image batch is this one
    vllm_greedy(llm, [(PROMPT, [new])])
    [selection] = llm.apply_model(lambda model: model.last_selection)
    _, _, hf_selection = hf_greedy(hf15, PROMPT, [new], config)
    assert torch.equal(selection.kept, hf_selection.kept) and selection.kept.numel() == 115


def test_register_is_idempotent():
    from vllm import ModelRegistry

    hired.vllm.register()
    hired.vllm.register()
    assert {HIRED, HIRED_LLAVA15} <= set(ModelRegistry.get_supported_archs())
