#!/usr/bin/env python3
"""Writes the seed corpus of hired's fuzz targets: fuzz/corpus/<target>/, a few small valid
inputs per target (tens of KB in all), each made here or copied from tests/fixtures.

Run from the repository root with the project's venv (Pillow):
    .venv/bin/python fuzz/make_corpus.py
Deterministic: a second run rewrites identical files. Reproducers of fixed bugs live next to
the seeds (named crash-*, leak-*, oom-*, timeout-* by libFuzzer) and are left alone.

Safetensors files are written here with struct + json (not with hired's writer), so the seeds do
not inherit a writer bug."""

import io
import json
import pathlib
import random
import struct

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
FIXTURES = ROOT / "tests" / "fixtures" / "llava"
SEED_PREFIX = "seed-"


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (folder / (SEED_PREFIX + name)).write_bytes(data)


# --- safetensors -----------------------------------------------------------------------------

FORMATS = {"F64": "d", "F32": "f", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b",
           "U8": "B", "U16": "H", "U32": "I", "U64": "Q", "BOOL": "B", "F8_E4M3": "B",
           "F8_E5M2": "B", "F8_E8M0": "B"}


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, values)]; BF16 values are given as uint16 bits, F8 ones as
    bytes."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        code = "H" if dtype == "BF16" else FORMATS[dtype]
        raw = struct.pack("<%d%s" % (len(values), code), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def bf16(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


def safetensors_seeds():
    rng = random.Random(1)
    write("safetensors", "every_dtype", safetensors([
        ("f64", "F64", [2], [1.5, -2.0]), ("f32", "F32", [2, 2], [1, 2, 3, -4]),
        ("f16", "F16", [2], [1.0, -2.5]), ("bf16", "BF16", [2], [bf16(1.0), bf16(-2.5)]),
        ("i64", "I64", [2], [-(1 << 40), 7]), ("i32", "I32", [1], [-5]), ("i16", "I16", [1], [-300]),
        ("i8", "I8", [2], [-128, 127]), ("u8", "U8", [3], [0, 200, 255]), ("u16", "U16", [1], [65535]),
        ("u32", "U32", [1], [7]), ("u64", "U64", [1], [7]), ("bool", "BOOL", [2], [1, 0]),
        ("f8", "F8_E4M3", [1], [0x38]), ("f8b", "F8_E5M2", [1], [0x3c]), ("f8c", "F8_E8M0", [1], [127]),
        ("scalar", "F32", [], [42.0]), ("empty", "F32", [0, 5], [])], {"format": "pt"}))
    write("safetensors", "weights", safetensors([
        ("language_model.model.norm.weight", "F32", [8], [rng.uniform(-1, 1) for _ in range(8)]),
        ("image_newline", "BF16", [4], [bf16(rng.uniform(-1, 1)) for _ in range(4)]),
        ("vision_tower.vision_model.embeddings.class_embedding", "F16", [4, 2],
         [rng.uniform(-1, 1) for _ in range(8)])]))


# --- JSON documents --------------------------------------------------------------------------

def json_seeds():
    # Every checkpoint shape the fixtures hold: LLaVA-1.5, Vicuna, Mistral, Yi, Qwen2.
    for config in sorted(FIXTURES.glob("*/config.json")):
        write("config_json", config.parent.name, config.read_bytes())
    write("config_json", "empty", "{}")
    write("weight_index", "mistral_tiny",
          (FIXTURES / "mistral_tiny" / "model.safetensors.index.json").read_bytes())
    write("weight_index", "two_shards", json.dumps({
        "metadata": {"total_size": 24},
        "weight_map": {"image_newline": "model-00001-of-00002.safetensors",
                       "lm_head.weight": "model-00002-of-00002.safetensors"}}))


# --- tokenizer -------------------------------------------------------------------------------

def provider_string(text):
    """FuzzedDataProvider::ConsumeRandomLengthString's encoding: backslashes doubled, then a
    backslash and another character end the string."""
    return text.replace(b"\\", b"\\\\") + b"\\\n"


def tokenizer_seeds():
    model = (FIXTURES / "vicuna_tiny" / "tokenizer.model").read_bytes()
    config = (FIXTURES / "vicuna_tiny" / "tokenizer_config.json").read_bytes()
    write("tokenizer", "vicuna_tiny", provider_string(config) + model)
    write("tokenizer", "legacy", provider_string(b'{"legacy": true}') + model)
    write("tokenizer", "no_config", provider_string(b"") + model)


# --- images ----------------------------------------------------------------------------------

def picture(mode, size=(12, 8)):
    rng = random.Random(size[0] * 31 + len(mode))
    image = Image.new("RGBA", size)
    image.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256), rng.randrange(256))
                   for _ in range(size[0] * size[1])])
    return image.convert(mode)


def encoded(image, fmt, **options):
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def psd(width, height, channels):
    """A minimal uncompressed 8-bit RGB(A) Photoshop file (Pillow writes none)."""
    head = b"8BPS" + struct.pack(">H6xHIIHH", 1, channels, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, resources, layers: empty
    planes = bytes((c * 60 + i * 7) % 256 for c in range(channels) for i in range(width * height))
    return head + sections + struct.pack(">H", 0) + planes


def hdr(width, height):
    """A Radiance RGBE file, flat (not run-length encoded) scanlines."""
    text = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y %d +X %d\n" % (height, width)
    return text + bytes((i * 37) % 256 for i in range(width * height * 4))


def image_seeds():
    rgb = picture("RGB")
    write("image", "rgb.png", encoded(rgb, "PNG"))
    write("image", "rgba.png", encoded(picture("RGBA"), "PNG"))
    write("image", "grey.png", encoded(picture("L"), "PNG"))
    write("image", "grey_alpha.png", encoded(picture("LA"), "PNG"))
    write("image", "palette_trns.png", encoded(picture("P"), "PNG", transparency=3))
    write("image", "interlaced.png", encoded(rgb, "PNG", interlace=1))
    write("image", "grey16.png", encoded(picture("L").convert("I;16"), "PNG"))
    write("image", "one_bit.png", encoded(picture("1"), "PNG"))
    write("image", "baseline.jpg", encoded(picture("RGB", (20, 12)), "JPEG", quality=80))
    write("image", "progressive.jpg", encoded(picture("RGB", (20, 12)), "JPEG", progressive=True))
    write("image", "grey.jpg", encoded(picture("L", (20, 12)), "JPEG"))
    write("image", "cmyk.jpg", encoded(picture("CMYK", (20, 12)), "JPEG"))
    write("image", "rgb.bmp", encoded(rgb, "BMP"))
    write("image", "palette.bmp", encoded(picture("P"), "BMP"))
    write("image", "rgb.gif", encoded(picture("P"), "GIF"))
    # Formats hired refuses (src/image_format.hpp): seeds that must stay refused.
    write("image", "rgb.tga", encoded(rgb, "TGA"))
    write("image", "rle.tga", encoded(picture("RGBA"), "TGA", compression="tga_rle"))
    write("image", "rgb.ppm", encoded(rgb, "PPM"))
    write("image", "grey.pgm", encoded(picture("L"), "PPM"))
    write("image", "rgb.psd", psd(12, 8, 3))
    write("image", "rgba.psd", psd(12, 8, 4))
    write("image", "flat.hdr", hdr(12, 8))


# --- preprocessed inputs ---------------------------------------------------------------------

def pixel_values_seeds():
    # 14-pixel tiles (the target's tiling): a 30x30 image tiles 2x2 (5 partitions), 10x30 1x3.
    rng = random.Random(2)
    def values(n):
        return [rng.uniform(-1.8, 2.1) for _ in range(n)]
    write("pixel_values", "one_image_f32", safetensors([
        ("pixel_values", "F32", [5, 3, 14, 14], values(5 * 3 * 14 * 14)),
        ("image_sizes", "I64", [1, 2], [30, 30])]))
    write("pixel_values", "two_images_f16", safetensors([
        ("pixel_values", "F16", [9, 3, 14, 14], values(9 * 3 * 14 * 14)),
        ("image_sizes", "I32", [2, 2], [30, 30, 10, 30])]))


def selection_seeds():
    rng = random.Random(3)
    pinpoints = [336, 672, 672, 336, 672, 672, 1008, 336, 336, 1008]

    def attention(rows, heads, keys):
        return [rng.random() / keys for _ in range(rows * heads * keys)]

    # N = 4 tokens per partition (a 2x2 patch grid): small, and every path of the selection.
    write("selection_input", "exact", safetensors([
        ("init_cls_attn", "F32", [5, 2, 5], attention(5, 2, 5)),
        ("final_cls_attn", "F32", [5, 2, 5], attention(5, 2, 5)),
        ("num_partitions", "I64", [1], [5]), ("image_sizes", "I64", [1, 2], [600, 600]),
        ("grid_pinpoints", "I64", [5, 2], pinpoints)]))
    write("selection_input", "reference_grids", safetensors([
        ("init_cls_attn", "BF16", [4, 1, 10], [bf16(x) for x in attention(4, 1, 10)]),
        ("final_cls_attn", "F16", [4, 1, 10], attention(4, 1, 10)),
        ("num_partitions", "I32", [2], [3, 1]), ("grid_shapes", "I64", [2, 2], [1, 2, 0, 0])]))
    write("selection_input", "batch_sizes_and_grids", safetensors([
        ("init_cls_attn", "F32", [9, 1, 5], attention(9, 1, 5)),
        ("final_cls_attn", "F32", [9, 1, 5], attention(9, 1, 5)),
        ("num_partitions", "I64", [3], [5, 3, 1]),
        ("image_sizes", "I64", [3, 2], [600, 600, 250, 600, 336, 336]),
        ("grid_shapes", "I64", [3, 2], [2, 2, 1, 2, 0, 0]),
        ("grid_pinpoints", "I64", [5, 2], pinpoints)]))


if __name__ == "__main__":
    for seeds in (safetensors_seeds, json_seeds, tokenizer_seeds, image_seeds, pixel_values_seeds,
                  selection_seeds):
        seeds()
