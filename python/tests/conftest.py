"""Shared fixtures of the Python tests: the repository's data, the tiny transformers checkpoints
and the C++ tools to compare with (paths come from CTest's environment, with in-tree defaults)."""

from __future__ import annotations

import json
import os
import pathlib
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "llava"
SAMPLE = ROOT / "examples" / "data" / "sample_600x600.safetensors"
SAMPLE_IMAGE = ROOT / "examples" / "data" / "sample_600x600.png"
sys.path.insert(0, str(FIXTURES))  # random_checkpoint.py, the writer of random checkpoints


def tool(name: str) -> pathlib.Path:
    """A C++ tool of the build (<NAME>_EXE, e.g. HIRED_SELECT_EXE, else build/apps/<name>)."""
    path = pathlib.Path(os.environ.get(f"{name.upper()}_EXE", ROOT / "build" / "apps" / name))
    if not path.is_file():
        pytest.fail(f"{path} is missing: build the C++ tools first (cmake --build --preset default)")
    return path


@pytest.fixture(scope="session")
def sample():
    """The bundled CLS-attention sample: a 600x600 image's layers 0 and 22, 5 partitions."""
    from safetensors.torch import load_file

    return load_file(str(SAMPLE))


def sample_tiles():
    """The bundled image's partitions as llava-v1.6's processor cuts them: uint8 [5, 3, 336, 336]."""
    import PIL.Image
    from transformers import LlavaNextImageProcessorPil

    processor = LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                           resample=PIL.Image.BICUBIC, do_rescale=False, do_normalize=False)
    image = PIL.Image.open(SAMPLE_IMAGE).convert("RGB")
    return processor(images=[image], return_tensors="pt")["pixel_values"][0].to(torch.uint8)


def make_processor(checkpoint: pathlib.Path):
    """llava-hf's LlavaNextProcessor for a fixture checkpoint (the fixtures hold the tokenizer and
    config; the image processor settings are llava-v1.6's preprocessor_config.json)."""
    import PIL.Image
    from transformers import AutoTokenizer, LlavaNextImageProcessorPil, LlavaNextProcessor

    config = json.loads((checkpoint / "config.json").read_text())
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
        image_grid_pinpoints=config["image_grid_pinpoints"], resample=PIL.Image.BICUBIC, do_pad=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    return LlavaNextProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", image_token="<image>", num_additional_image_tokens=1,
    )


def make_llava15_processor(checkpoint: pathlib.Path):
    """llava-hf's LlavaProcessor for the LLaVA-1.5 fixture (llava-1.5-7b-hf's
    preprocessor_config.json: CLIPImageProcessor, shortest edge 336, centre crop 336)."""
    import PIL.Image
    from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, resample=PIL.Image.BICUBIC,
        do_center_crop=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
        vision_feature_select_strategy="default", image_token="<image>", num_additional_image_tokens=1,
    )


def vllm_fixture_checkpoint(architecture: str) -> pathlib.Path:
    """A tiny random checkpoint of the vLLM tests, written once per build
    (tests/fixtures/llava/random_checkpoint.py) into HIRED_VLLM_CHECKPOINTS (CTest sets the
    build directory)."""
    import random_checkpoint

    where = pathlib.Path(os.environ.get("HIRED_VLLM_CHECKPOINTS", ROOT / "build"))
    return random_checkpoint.write(where / f"vllm_{architecture}_tiny", architecture=architecture)


@pytest.fixture(scope="session")
def vllm_checkpoint() -> pathlib.Path:
    """The tiny random LLaVA-Next of the vLLM tests."""
    return vllm_fixture_checkpoint("llava_next")


@pytest.fixture(scope="session")
def vllm_llava15_checkpoint() -> pathlib.Path:
    """The tiny random LLaVA-1.5 of the vLLM tests."""
    return vllm_fixture_checkpoint("llava")
