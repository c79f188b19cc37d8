"""A random LLaVA-Next checkpoint that vLLM loads, written at test time (a few seconds) instead
of being committed: llava-hf's directory layout with seeded random weights, an offline
tokenizer and the processor's files.

    python python/tests/vllm_fixture.py OUT [--shape tiny|mini]

- Weights use the llava-hf hub tensor names (`vision_tower.vision_model.*`, ...), written by
  tests/fixtures/llava/generate_llava_fixtures.py's save_checkpoint: transformers 5 saves
  `vision_tower.embeddings.*`, which vLLM's weight name mapper does not accept.
- The tokenizer is a `tokenizers` word-level vocabulary wrapped in PreTrainedTokenizerFast
  (nothing to download): `<s>` 1, `</s>` 2, the words of the tests' prompts, filler words up to
  32000, then `<image>` 32000 and `<pad>` 32001 as in llava-hf; a plain chat template for
  vLLM's OpenAI server.
- The processor is llava-v1.6's (shortest edge 336, crop 336, CLIP mean/std, bicubic, the
  config's grid pinpoints).

Shapes: `tiny` (tests: CLIP 336/14 32 wide, 4 layers; a 128-wide 2-layer Llama with head_dim
32, which vLLM's CPU attention supports; every head count even, for tensor parallelism 2) and
`mini` (hired's `mini` preset, as benchmarks/hf_bench.py writes it: the LLM dominates the
work, as in 7B).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMAGE_TOKEN = 32000
PAD_TOKEN = 32001
VOCAB = 32064
PINPOINTS = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
WORDS = ("USER: ASSISTANT: A What is shown in this image? these images? Describe the picture "
         "and two pictures. Compare them. colours shapes of").split()
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or part['type'] == 'image_url' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %} {% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
SHAPES = {
    "tiny": {
        "vision": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4),
        "text": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=4, head_dim=32, initializer_range=0.2),
    },
    "mini": {
        "vision": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4),
        "text": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=4, head_dim=64),
    },
}


def _save_checkpoint():
    """generate_llava_fixtures.save_checkpoint: weights renamed to the hub layout."""
    path = ROOT / "tests" / "fixtures" / "llava" / "generate_llava_fixtures.py"
    spec = importlib.util.spec_from_file_location("generate_llava_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.save_checkpoint


def config(shape: str):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig

    sizes = SHAPES[shape]
    return LlavaNextConfig(
        vision_config=CLIPVisionConfig(**sizes["vision"], image_size=336, patch_size=14,
                                       projection_dim=sizes["vision"]["hidden_size"], hidden_act="quick_gelu"),
        text_config=LlamaConfig(**sizes["text"], vocab_size=VOCAB, max_position_embeddings=4096,
                                rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=PAD_TOKEN,
                                tie_word_embeddings=False),
        image_token_index=IMAGE_TOKEN, vision_feature_layer=-2, vision_feature_select_strategy="default",
        image_grid_pinpoints=PINPOINTS, tie_word_embeddings=False,
    )


def tokenizer():
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    while len(vocab) < IMAGE_TOKEN:
        vocab[f"w{len(vocab)}"] = len(vocab)
    vocab["<image>"], vocab["<pad>"] = IMAGE_TOKEN, PAD_TOKEN
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    words.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<image>", "<pad>")])
    return PreTrainedTokenizerFast(tokenizer_object=words, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", extra_special_tokens={"image_token": "<image>"},
                                   chat_template=CHAT_TEMPLATE)


def processor(words):
    import PIL.Image
    from transformers import LlavaNextImageProcessor, LlavaNextProcessor

    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}, image_grid_pinpoints=PINPOINTS,
        resample=PIL.Image.BICUBIC, do_pad=True,
    )
    return LlavaNextProcessor(image_processor=image_processor, tokenizer=words, patch_size=14,
                              vision_feature_select_strategy="default", image_token="<image>",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def write(out: pathlib.Path, shape: str = "tiny", seed: int = 0) -> pathlib.Path:
    """Writes the checkpoint into `out` (once: an existing one is kept) and returns `out`.
    Written beside it and renamed, so concurrent writers leave one whole checkpoint."""
    out = pathlib.Path(out)
    if out.is_dir():
        return out
    import torch
    from transformers import LlavaNextForConditionalGeneration

    staging = out.with_name(f"{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config(shape)).eval()
    processor(tokenizer()).save_pretrained(staging)
    _save_checkpoint()(model, str(staging), 1)
    try:
        staging.rename(out)
    except OSError:  # another writer was first
        shutil.rmtree(staging)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    args = parser.parse_args(argv)
    print(write(args.out, args.shape))


if __name__ == "__main__":
    sys.exit(main())
