"""The Python examples run as a user runs them (examples/python)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy
import PIL.Image

from conftest import FIXTURES, ROOT, SAMPLE, SAMPLE_IMAGE, make_processor, tool

EXAMPLES = ROOT / "examples" / "python"


def test_generate_applies_hired_and_generates(tmp_path):
    checkpoint = tmp_path / "vicuna_tiny"
    shutil.copytree(FIXTURES / "vicuna_tiny", checkpoint)
    make_processor(checkpoint).save_pretrained(checkpoint)  # the processor files a hub checkpoint has
    out = subprocess.run([sys.executable, EXAMPLES / "generate.py", checkpoint, FIXTURES / "images" / "wide_150x380.png"],
                         check=True, capture_output=True, text=True).stdout
    assert "kept " in out and "generated: [" in out


def test_show_selection_prints_and_draws_hireds_overlay(tmp_path):
    png, cli_png = tmp_path / "overlay.png", tmp_path / "hired_select.png"
    out = subprocess.run([sys.executable, EXAMPLES / "show_selection.py", SAMPLE, SAMPLE_IMAGE, png],
                         check=True, capture_output=True, text=True).stdout
    assert "partition 0: keeps 288 of 576" in out
    subprocess.run([tool("hired_select"), SAMPLE, "--overlay", cli_png, "--image", SAMPLE_IMAGE], check=True,
                   capture_output=True)
    assert numpy.array_equal(numpy.asarray(PIL.Image.open(png)), numpy.asarray(PIL.Image.open(cli_png)))
