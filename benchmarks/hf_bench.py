"""HiRED in Hugging Face transformers, measured as the paper measures it, next to stock
transformers and hired's own C++ runtime (hired_bench) on the same checkpoint and image.

    .venv/bin/python benchmarks/hf_bench.py [--checkpoint DIR] [--budgets 1.0,0.4,0.2,0.1]
                                            [--batch 1,4] [--rounds 5] [--threads N]
                                            [--device cpu|cuda] [--dtype fp32|fp16|bf16]
                                            [--hired-bench PATH]

Without --checkpoint a random checkpoint of hired's `mini` shapes (CLIP 336/14 128 wide,
4 layers; a 256-wide 4-layer Llama; Vicuna's ids) is written once into build/hf_bench_mini.

Method: one warm-up of every row, then `--rounds` rounds, each running every row once (rows
interleaved, so a burst of load lands on all of them); medians with min..max. TTFT: one
forward over the prompt (vision tower, selection, projector, merge, LLM prefill) up to the
first token's logits; throughput: generated tokens (15, greedy, EOS ignored) / generate()'s
wall time, all rows of the batch; memory: the CUDA allocator's peak of one generate() (on the
CPU transformers has no allocator statistics: "-"). The FLOP ceiling of each row and hired's
own runtime come from hired_bench run on the same checkpoint, with the same thread count, in
the same rounds (its rows also interleaved); transformers' ceiling counts every vision layer,
which it runs (hired's runtime stops at the feature layer); achieved = TTFT speed-up / ceiling. The last line
gives the share of the vision tower that HiRED's hooks and selection cost.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import PIL.Image
import torch

import hired
import hired.transformers

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGE = ROOT / "examples" / "data" / "sample_600x600.png"
NEW_TOKENS = 15


def mini_checkpoint(path: pathlib.Path) -> pathlib.Path:
    """hired's `mini` preset as a llava-hf checkpoint (seeded random weights), written once."""
    sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "llava"))
    import random_checkpoint

    return random_checkpoint.write(path, "mini")


def prompt_ids(image_rows: int, image_token: int) -> list[int]:
    """hired_bench's prompt for random weights (hired::llava::default_prompt_ids), with the
    image token expanded to the image's rows as the processor does."""
    return [1, 3148, 1001, 29901] + [image_token] * image_rows + [13] + [3000 + 17 * i for i in range(12)]


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


class HfRow:
    """transformers on the checkpoint, stock (config None) or with HiRED at a budget."""

    def __init__(self, model, pixels, config: hired.DropConfig | None, batch: int):
        self.model, self.config, self.batch = model, config, batch
        self.pixel_values = pixels["pixel_values"].repeat(batch, 1, 1, 1, 1).to(model.device, model.dtype)
        self.image_sizes = pixels["image_sizes"].repeat(batch, 1)
        size = tuple(int(v) for v in self.image_sizes[0])
        counted = config or hired.DropConfig(budget_rate=1.0)  # stock: every token, every newline
        self.visual = hired.num_image_tokens(size, dataclasses.replace(counted, newline="none"))
        rows = hired.num_image_tokens(size, counted)
        self.input_ids = torch.tensor([prompt_ids(rows, model.config.image_token_id)] * batch, device=model.device)

    def __enter__(self):
        self.handle = hired.transformers.apply(self.model, None, self.config) if self.config else None
        return self

    def __exit__(self, *_):
        if self.handle:
            self.handle.remove()

    @torch.no_grad()
    def run(self) -> dict:
        inputs = {"input_ids": self.input_ids, "pixel_values": self.pixel_values, "image_sizes": self.image_sizes}
        ttft, _ = timed(lambda: synchronized(self.model(**inputs, use_cache=True).logits[:, -1].argmax(-1)))
        cuda = self.model.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        total, out = timed(lambda: synchronized(self.model.generate(
            **inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)))
        generated = (out.shape[1] - self.input_ids.shape[1]) * self.batch
        peak = torch.cuda.max_memory_allocated() if cuda else None
        return {"ttft_s": ttft, "throughput": generated / total, "peak_bytes": peak}


def synchronized(value):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value


def hired_bench(args, checkpoint: pathlib.Path, budgets, batch: int, threads: int | None = None) -> dict[float, dict]:
    """One round of hired's runtime (its own warm-up, then one measured run per budget), with
    `threads` CPU threads (default: the thread count torch runs with here)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = pathlib.Path(tmp) / "bench.json"
        environment = dict(os.environ, OMP_NUM_THREADS=str(threads or torch.get_num_threads()))
        subprocess.run([args.hired_bench, "--model", checkpoint, "--budgets", ",".join(map(str, budgets)),
                        "--batch", str(batch), "--warmup", "1", "--reps", "1", "--no-selection",
                        "--device", args.device, "--dtype", args.dtype, "--json", report],
                       check=True, capture_output=True, env=environment)
        rows = json.loads(report.read_text())["rows"]
    return {row["budget_rate"]: row for row in rows}


def spread(values, digits: int = 3) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def interleaved(rows, rounds: int, measure, after_round=None) -> dict:
    """One warm-up of every row, then `rounds` rounds each running every row once, in alternating
    order (as hired_bench does), so a burst of load lands on all rows; after_round(measured) runs
    after each round (hired_bench's rows). Each row's measurements of the measured rounds."""
    results = {row: [] for row in rows}
    for round_ in range(rounds + 1):  # round 0 is the warm-up
        for row in rows if round_ % 2 == 0 else rows[::-1]:
            measured = measure(row)
            if round_:
                results[row].append(measured)
        if after_round:
            after_round(round_ > 0)
    return results


def hired_bench_round(args, checkpoint, budgets, batches, runtime: dict, measured: bool, threads=None) -> None:
    """hired_bench's rows of one round, kept in runtime[(batch, rate)] when measured."""
    for batch in batches:
        for rate, report in hired_bench(args, checkpoint, budgets, batch, threads).items():
            if measured:
                runtime[(batch, rate)].append(report)


TIMING = ("timing: a warm-up of every row, then {rounds} rounds each running every row once (interleaved, "
          "alternating order; hired_bench's rows once per round); medians (min..max)")
HEADER = (f"{'batch':>5} {'host':<22} {'budget':>6} {'visual':>6} {'LLM in':>6} {'TTFT s':>22} {'tok/s':>24} "
          f"{'peak MiB':>8} {'TTFT x':>6} {'ceiling':>7} {'achieved':>8}")


def table_row(batch, host, budget, visual, llm_in, ttft, throughput, peak_mib, speedup, ceiling) -> str:
    """One line under HEADER: ttft and throughput are the rounds' samples; peak_mib None is "-"."""
    peak = "-" if peak_mib is None else f"{peak_mib:.1f}"
    return (f"{batch:>5} {host:<22} {budget:>6} {visual:>6} {llm_in:>6} {spread(ttft):>22} {spread(throughput, 2):>24} "
            f"{peak:>8} {speedup:>6.2f} {ceiling:>7.2f} {speedup / ceiling:>8.2f}")


def runtime_rows(runtime: dict, batch: int, budgets) -> list[str]:
    """hired_bench's lines of a batch: its 100% row (stock) is the base of its TTFT x."""
    base = statistics.median(r["ttft_s"] for r in runtime[(batch, 1.0)])
    lines = []
    for rate in budgets:
        reports = runtime[(batch, rate)]
        ttft = [r["ttft_s"] for r in reports]
        lines.append(table_row(
            batch, "hired runtime (C++)" if rate < 1.0 else "hired runtime, stock", f"{rate:.0%}",
            reports[0]["visual_tokens"], reports[0]["llm_input_tokens"], ttft, [r["throughput_tok_s"] for r in reports],
            max(r["peak_mem_bytes"] for r in reports) / 2**20, base / statistics.median(ttft),
            reports[0]["ttft_ceiling_speedup"]))
    return lines


@torch.no_grad()
def vision_share(model, pixels, rounds: int) -> str:
    """The vision tower with and without HiRED's q/k hooks, and the selection alone, interleaved."""
    pv = pixels["pixel_values"][0].to(model.device, model.dtype)
    tower = model.model.vision_tower
    heads = model.config.vision_config.num_attention_heads
    stock, hooked, selection = [], [], []
    for _ in range(rounds + 1):
        stock.append(timed(lambda: synchronized(tower(pv, output_hidden_states=True)))[0])
        handle = hired.transformers.apply(model, None, hired.DropConfig())
        hooked.append(timed(lambda: synchronized(tower(pv, output_hidden_states=True)))[0])
        c = handle._captured
        selection.append(timed(lambda: synchronized(hired.select_qk(
            c["init.q"], c["init.k"], c["final.q"], c["final.k"], heads, [pv.shape[0]], pixels["image_sizes"])))[0])
        handle.remove()
    tower_s = statistics.median(stock[1:])
    hooks = statistics.median(hooked[1:]) - tower_s
    select_s = statistics.median(selection[1:])
    return (f"vision tower {tower_s * 1e3:.1f} ms; with the q/k hooks {hooks * 1e3:+.2f} ms ({hooks / tower_s:+.1%}); "
            f"select_qk {select_s * 1e3:.2f} ms ({select_s / tower_s:.1%}); medians of {rounds} after a warm-up")


def bench_arguments(doc: str, budgets: str, batch: str) -> argparse.ArgumentParser:
    """The options hf_bench and vllm_bench share (their defaults differ in budgets and batches)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=pathlib.Path)
    parser.add_argument("--budgets", default=budgets)
    parser.add_argument("--batch", default=batch)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="fp32", choices=list(DTYPES))
    parser.add_argument("--hired-bench", type=pathlib.Path, default=ROOT / "build" / "benchmarks" / "hired_bench")
    return parser


def main() -> None:
    parser = bench_arguments(__doc__, budgets="1.0,0.4,0.2,0.1", batch="1,4")
    parser.add_argument("--threads", type=int, help="torch threads for both hosts (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import LlavaNextForConditionalGeneration, LlavaNextImageProcessorPil

    checkpoint = args.checkpoint or mini_checkpoint(ROOT / "build" / "hf_bench_mini")
    model = LlavaNextForConditionalGeneration.from_pretrained(checkpoint, dtype=DTYPES[args.dtype])
    model = model.to(args.device).eval()
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
        image_grid_pinpoints=model.config.image_grid_pinpoints, resample=PIL.Image.BICUBIC, do_pad=True)
    pixels = image_processor(images=[PIL.Image.open(IMAGE).convert("RGB")], return_tensors="pt")
    budgets = sorted({1.0, *(float(b) for b in args.budgets.split(","))}, reverse=True)
    batches = [int(b) for b in args.batch.split(",")]
    use_hired_bench = args.hired_bench.is_file()

    rows = [(b, r) for b in batches for r in [None] + budgets]  # None: stock transformers
    runtime = {(b, r): [] for b in batches for r in budgets}

    def measure(key):
        batch, rate = key
        with HfRow(model, pixels, rate and hired.DropConfig(budget_rate=rate), batch) as row:
            return row, row.run()

    def after_round(measured):
        if use_hired_bench:
            hired_bench_round(args, checkpoint, budgets, batches, runtime, measured)

    results = interleaved(rows, args.rounds, measure, after_round)

    print(f"hf_bench: transformers {transformers_version()}, torch {torch.__version__}, {args.device} {args.dtype}, "
          f"{torch.get_num_threads()} thread(s), {checkpoint.name}, {IMAGE.name}, {NEW_TOKENS} new tokens greedy")
    print(TIMING.format(rounds=args.rounds))
    print(HEADER)
    for batch in batches:
        stock_ttft = statistics.median(m["ttft_s"] for _, m in results[(batch, None)])
        for rate in [None] + budgets:
            samples = results[(batch, rate)]
            row = samples[0][0]
            ttft = [m["ttft_s"] for _, m in samples]
            peaks = [m["peak_bytes"] for _, m in samples if m["peak_bytes"] is not None]
            reports = runtime.get((batch, rate)) if rate else None
            print(table_row(
                batch, "transformers" if rate is None else "transformers + hired",
                "stock" if rate is None else f"{rate:.0%}", row.visual * batch, row.input_ids.shape[1], ttft,
                [m["throughput"] for _, m in samples], max(peaks) / 2**20 if peaks else None,
                stock_ttft / statistics.median(ttft),
                reports[0]["ttft_ceiling_speedup_whole_tower"] if reports else 1.0))
        if use_hired_bench:
            print("\n".join(runtime_rows(runtime, batch, budgets)))
    print("TTFT x: against the batch's stock row of the same host; ceiling: the TTFT speed-up the FLOPs allow "
          "(hired_bench's count, with every vision layer for transformers, which runs them all, and up to the "
          "feature layer for hired's runtime); achieved = TTFT x / ceiling. hired_bench's peak counts LibTorch's "
          "CPU bytes.")
    print("HiRED inside transformers:", vision_share(model, pixels, args.rounds))
    if not use_hired_bench:
        print(f"(no {args.hired_bench}: the FLOP ceiling and hired's runtime rows need it; build hired_bench)",
              file=sys.stderr)


def transformers_version() -> str:
    import transformers
    return transformers.__version__


DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

if __name__ == "__main__":
    main()
