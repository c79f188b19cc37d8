"""HiRED inside vLLM, measured as hf_bench measures transformers: stock vLLM against hired.vllm
at several budgets, and hired's own C++ runtime (hired_bench), on the same checkpoint and image.

    [OMP_NUM_THREADS=N] .venv-vllm/bin/python benchmarks/vllm_bench.py [--checkpoint DIR]
        [--budgets 0.4,0.2,0.1] [--batch 1,8] [--rounds 5] [--device cpu|cuda]
        [--dtype fp32|fp16|bf16] [--hired-bench PATH]

Without --checkpoint a random checkpoint of hired's `mini` shapes (CLIP 336/14 128 wide, 4
layers; a 256-wide 4-layer Llama: the LLM dominates, as in 7B) is written once into
build/vllm_bench_mini (tests/fixtures/llava/random_checkpoint.py; hf_bench's weights).

vLLM runs offline in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), one engine per row
(stock, and HiRED at each budget through hf_overrides), eager (no torch.compile), prefix
caching and the multimodal processor cache off, and every request carries an image of its own
(the sample with one pixel changed), so that no cache answers a repeated image. All of a
batch's prompts fit one scheduler step (max_num_batched_tokens), as hired_bench prefills a
batch at once. The prompt is hired_bench's (its ids, the image token expanded by vLLM).

Method: one warm-up of every row, then `--rounds` rounds, each running every row once (rows
interleaved in alternating order; hired_bench's rows once per round); medians with min..max.
TTFT: vLLM's request metrics (first_token_latency: arrival to first token), the batch's
slowest request; throughput: generated tokens (15 per request, greedy, EOS ignored) / the
wall time of generate(), all requests. The FLOP ceiling of each row comes from hired_bench
run on the same checkpoint with the thread count vLLM's worker runs with; achieved = TTFT
speed-up / ceiling. Threads: vLLM's CPU worker takes OMP_NUM_THREADS from the environment
(torch.set_num_threads is refused once it has bound its threads); hired_bench runs with the
count the worker reports. --device says where vLLM runs (its platform is its own choice; on a
GPU use vLLM's CUDA wheel), for hired_bench's rows.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


import PIL.Image  # noqa: E402

import hired  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from hf_bench import (  # noqa: E402
    HEADER, IMAGE, NEW_TOKENS, ROOT, TIMING, bench_arguments, hired_bench_round, interleaved, mini_checkpoint,
    prompt_ids, runtime_rows, table_row,
)

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class Images:
    """The sample image, one pixel changed per request: a new image (and cache key) each time."""

    def __init__(self):
        self.base = PIL.Image.open(IMAGE).convert("RGB")
        self.count = 0

    def next(self) -> PIL.Image.Image:
        self.count += 1
        image = self.base.copy()
        image.putpixel((0, 0), (self.count % 256, self.count // 256 % 256, 7))
        return image


def engine(checkpoint, dtype: str, batch: int, rate: float | None):
    from vllm import LLM

    overrides = {}
    if rate is not None:
        overrides = {"architectures": ["HiredLlavaNextForConditionalGeneration"], "hired": {"budget_rate": rate}}
    return LLM(model=str(checkpoint), dtype=dtype, enforce_eager=True, max_model_len=4096, seed=0,
               enable_prefix_caching=False, mm_processor_cache_gb=0, max_num_seqs=max(batch, 8),
               max_num_batched_tokens=4096 * max(batch, 8), disable_log_stats=False, hf_overrides=overrides)


def run(llm, images: Images, batch: int, rate: float | None, image_token: int) -> dict:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts = [TokensPrompt(prompt_token_ids=prompt_ids(1, image_token), multi_modal_data={"image": images.next()})
               for _ in range(batch)]
    params = SamplingParams(max_tokens=NEW_TOKENS, temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    total = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outputs)
    size = (images.base.height, images.base.width)
    kept = hired.DropConfig(budget_rate=rate or 1.0, newline="none")  # stock: every token
    return {
        "ttft_s": max(o.metrics.first_token_latency for o in outputs),
        "throughput": generated / total,
        "llm_input_tokens": len(outputs[0].prompt_token_ids),
        "visual": hired.num_image_tokens(size, kept),
    }


def worker_threads(llm) -> int:
    import torch

    return llm.apply_model(lambda _model: torch.get_num_threads())[0]


def main() -> None:
    args = bench_arguments(__doc__, budgets="0.4,0.2,0.1", batch="1,8").parse_args()

    checkpoint = args.checkpoint or mini_checkpoint(ROOT / "build" / "vllm_bench_mini")
    image_token = json.loads((checkpoint / "config.json").read_text())["image_token_index"]
    budgets = sorted({float(b) for b in args.budgets.split(",")}, reverse=True)
    batches = [int(b) for b in args.batch.split(",")]
    engines = {rate: engine(checkpoint, DTYPES[args.dtype], max(batches), rate) for rate in [None] + budgets}
    threads = worker_threads(engines[None])
    use_hired_bench = args.hired_bench.is_file()
    images = Images()

    rows = [(b, r) for b in batches for r in [None] + budgets]  # None: stock vLLM
    runtime = {(b, r): [] for b in batches for r in [1.0] + budgets}

    def after_round(measured):
        if use_hired_bench:
            hired_bench_round(args, checkpoint, [1.0] + budgets, batches, runtime, measured, threads)

    results = interleaved(rows, args.rounds, lambda key: run(engines[key[1]], images, *key, image_token),
                          after_round)

    import torch
    import vllm

    print(f"vllm_bench: vLLM {vllm.__version__}, torch {torch.__version__}, {args.device} {args.dtype}, "
          f"{threads} thread(s), "
          f"{checkpoint.name}, {IMAGE.name} (a new pixel per request), {NEW_TOKENS} new tokens greedy")
    print(TIMING.format(rounds=args.rounds))
    print(HEADER)
    for batch in batches:
        stock_ttft = statistics.median(m["ttft_s"] for m in results[(batch, None)])
        for rate in [None] + budgets:
            samples = results[(batch, rate)]
            ttft = [m["ttft_s"] for m in samples]
            reports = runtime[(batch, rate or 1.0)] if use_hired_bench else None
            print(table_row(
                batch, "vLLM" if rate is None else "vLLM + hired", "stock" if rate is None else f"{rate:.0%}",
                samples[0]["visual"] * batch, samples[0]["llm_input_tokens"], ttft,
                [m["throughput"] for m in samples], None, stock_ttft / statistics.median(ttft),
                reports[0]["ttft_ceiling_speedup"] if reports else float("nan")))
        if use_hired_bench:
            print("\n".join(runtime_rows(runtime, batch, [1.0] + budgets)))
    print("TTFT: the batch's last first token (vLLM: request metrics, arrival to first token); TTFT x: against the "
          "batch's stock row of the same host; ceiling: the TTFT speed-up the FLOPs allow (hired_bench's count); "
          "achieved = TTFT x / ceiling. vLLM has no CPU peak (\"-\"); hired_bench's counts LibTorch's CPU bytes.")
    if not use_hired_bench:
        print(f"(no {args.hired_bench}: the FLOP ceiling and hired's runtime rows need it; build hired_bench)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
