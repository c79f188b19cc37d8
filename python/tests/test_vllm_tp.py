"""Tensor parallelism 2 in vLLM on the CPU (vllm_tp.py, two worker processes): every rank
keeps the same tokens (each rank scores its heads by hired's arithmetic, the rows are gathered
in head order), the tokens and greedy ids of one process holding every head
(hired.transformers.apply), and hired's placeholder counts."""

from __future__ import annotations

import json
import subprocess
import sys

import PIL.Image
import torch

import hired
import hired.transformers
from conftest import FIXTURES, ROOT, SAMPLE_IMAGE
from test_vllm import NEW_TOKENS, PROMPT, hf_greedy, image_tokens

RATE = 0.2


def test_two_ranks_keep_the_tokens_of_one(vllm_checkpoint):
    from transformers import AutoProcessor, LlavaNextForConditionalGeneration

    wide = FIXTURES / "images" / "wide_150x380.png"
    requests = [[PROMPT, [str(wide)]], [PROMPT, [str(SAMPLE_IMAGE)]]]
    run = subprocess.run(
        [sys.executable, str(ROOT / "python" / "tests" / "vllm_tp.py"), str(vllm_checkpoint), json.dumps(requests),
         str(RATE)],
        capture_output=True, text=True, timeout=900,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stdout[-3000:] + run.stderr[-6000:]
    result = json.loads(lines[-1][len("RESULT "):])

    ranks = result["kept_per_rank"]
    assert len(ranks) == 2 and ranks[0] == ranks[1]
    model = LlavaNextForConditionalGeneration.from_pretrained(str(vllm_checkpoint), dtype=torch.float32).eval()
    hf = (model, AutoProcessor.from_pretrained(str(vllm_checkpoint)))
    config = hired.DropConfig(budget_rate=RATE)
    kept = {tuple(size): partitions for size, partitions in ranks[0]}  # by image size
    for (text, paths), (prompt, generated) in zip(requests, result["outputs"]):
        [image] = [PIL.Image.open(path).convert("RGB") for path in paths]
        hf_prompt, hf_generated, selection = hf_greedy(hf, text, [image], config)
        assert image_tokens(prompt) == hired.num_image_tokens((image.height, image.width), config)
        assert len(generated) == NEW_TOKENS
        assert (prompt, generated) == (hf_prompt, hf_generated)
        one_process = [selection.kept_in(p).tolist() for p in range(len(selection.budgets))]
        assert kept[(image.height, image.width)] == one_process
