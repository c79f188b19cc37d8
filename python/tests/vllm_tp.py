"""HiRED in a vLLM engine with tensor parallelism 2 on the CPU (two worker processes, one core
each), for test_vllm_tp.py: runs the requests given as JSON and prints, as JSON, each
request's prompt and generated ids and each rank's kept tokens of the last image batch, per image.

    python vllm_tp.py CHECKPOINT REQUESTS_JSON RATE

REQUESTS_JSON: [[prompt text, [image path, ...]], ...]. vLLM starts its workers by spawning,
which imports this file again: everything runs under the __main__ guard.
"""

from __future__ import annotations

import json
import os
import sys


def kept_tokens(model) -> list:
    """A rank's kept tokens of the last image batch (run in each worker by apply_model): per
    image, its (height, width) and each partition's kept patch indices."""
    selection = model.last_selection
    offsets = selection.partition_offsets.tolist()
    return [[list(selection.image_sizes[2 * b : 2 * b + 2]),
             [selection.kept_in(p).tolist() for p in range(offsets[b], offsets[b + 1])]]
            for b in range(len(offsets) - 1)]


def main(checkpoint: str, requests: list, rate: float) -> dict:
    import PIL.Image
    from vllm import LLM, SamplingParams

    llm = LLM(model=checkpoint, enforce_eager=True, max_model_len=4096, dtype="float32", seed=0,
              tensor_parallel_size=2, hf_overrides={"architectures": ["HiredLlavaNextForConditionalGeneration"],
                                                    "hired": {"budget_rate": rate}})
    prompts = []
    for text, paths in requests:
        images = [PIL.Image.open(path).convert("RGB") for path in paths]
        prompts.append({"prompt": text, "multi_modal_data": {"image": images if len(images) > 1 else images[0]}})
    outputs = llm.generate(prompts, SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True), use_tqdm=False)
    kept = llm.apply_model(kept_tokens)
    return {"outputs": [[list(o.prompt_token_ids), list(o.outputs[0].token_ids)] for o in outputs],
            "kept_per_rank": kept}


if __name__ == "__main__":
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    # vLLM binds each rank to a NUMA node by itself, and refuses 2 ranks on 1 node: one core each.
    cores = sorted(os.sched_getaffinity(0))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"{cores[0]}|{cores[min(1, len(cores) - 1)]}")
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # apply_model's function, to the workers
    result = main(sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]))
    print("RESULT " + json.dumps(result))
