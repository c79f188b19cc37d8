"""torch.ops.hired and the typed wrappers: the same answers as hired's C++ tools, the counts
transformers' processor gives, opcheck, torch.compile, and every rejection named."""

from __future__ import annotations

import json
import random
import subprocess

import numpy
import PIL.Image
import pytest
import torch

import hired
from conftest import SAMPLE, SAMPLE_IMAGE, sample_tiles, tool


def layout(sample):
    return {"num_partitions": sample["num_partitions"], "image_sizes": sample["image_sizes"]}


def test_selection_equals_hired_select(sample):
    """The package and the torch-free CLI keep the same tokens of the bundled sample."""
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    cli = json.loads(subprocess.run([tool("hired_select"), SAMPLE], check=True, capture_output=True,
                                    text=True).stdout)
    partitions = cli["images"][0]["partitions"]
    assert [p["budget"] for p in partitions] == selection.budgets.tolist()
    for p, part in enumerate(partitions):
        assert selection.kept_in(p).tolist() == part["kept"]
    assert selection.requested.tolist() == [576]
    assert selection.partition_offsets.tolist() == [0, 5]


def test_gather_packs_the_kept_tokens_with_newline_rows(sample):
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    features = torch.randn(5, 576, 8)
    newline = torch.full((8,), -7.0)
    packed = hired.gather(selection, features, newline)
    assert packed.features.shape == (576 + 48, 8)
    assert packed.lengths.tolist() == [624]
    tokens = packed.source_rows >= 0
    assert int(tokens.sum()) == 576
    assert torch.equal(packed.features[tokens], features.reshape(-1, 8)[packed.source_rows[tokens]])
    assert torch.equal(packed.features[~tokens], newline.expand(48, 8))


def test_pack_rows_after_a_projector_equals_gather_of_the_projected_features(sample):
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    features, weight = torch.randn(5, 576, 8), torch.randn(8, 12)
    newline = torch.randn(12)
    kept = hired.gather(selection, features, config=hired.DropConfig(newline="none"))
    assert kept.features.shape == (576, 8) and kept.lengths.tolist() == [576]
    rows = hired.pack_rows(selection, kept.features @ weight, newline)
    whole = hired.gather(selection, features @ weight, newline)
    assert torch.allclose(rows.features, whole.features, atol=1e-6)
    assert torch.equal(rows.source_rows, whole.source_rows)


def test_select_qk_keeps_what_cls_attention_rows_keep():
    torch.manual_seed(0)
    q, k = torch.randn(5, 577, 32), torch.randn(5, 577, 32)
    a = hired.select_qk(q, k, q * 0.5, k, 4, [5], [[600, 600]])
    rows = hired.cls_attention(q, k, 4)
    assert rows.shape == (5, 4, 577) and torch.allclose(rows.sum(-1), torch.ones(5, 4))
    b = hired.select(rows, hired.cls_attention(q * 0.5, k, 4), [5], [[600, 600]])
    assert torch.equal(a.kept_offsets, b.kept_offsets)
    assert torch.equal(a.kept, b.kept)  # no near-ties in random data at this cut


def test_qk_attention_rows_split_by_heads_select_what_select_qk_selects():
    """Rows by hired's arithmetic, computed per half of the heads and joined in head order (what
    two tensor-parallel ranks gather), keep select_qk's tokens bit for bit."""
    torch.manual_seed(1)
    q, k = torch.randn(5, 577, 32), torch.randn(5, 577, 32)
    whole = hired.qk_attention(q, k, 4)
    assert whole.shape == (5, 4, 577) and whole.dtype == torch.float32
    assert torch.allclose(whole, hired.cls_attention(q, k, 4), atol=1e-6)
    halves = [hired.qk_attention(q[..., h : h + 16], k[..., h : h + 16], 2) for h in (0, 16)]
    assert torch.equal(torch.cat(halves, 1), whole)
    final = [hired.qk_attention(q[..., h : h + 16] * 0.5, k[..., h : h + 16], 2) for h in (0, 16)]
    expected = hired.select_qk(q, k, q * 0.5, k, 4, [5], [[600, 600]])
    got = hired.select(torch.cat(halves, 1), torch.cat(final, 1), [5], [[600, 600]])
    assert torch.equal(got.kept_offsets, expected.kept_offsets)
    assert torch.equal(got.kept, expected.kept)


def test_num_image_tokens_is_transformers_count_at_rate_one():
    """hired's count at rate 1.0 (exact, every_row) is stock LLaVA-Next's, for any image size."""
    from transformers import AutoTokenizer, LlavaNextImageProcessor, LlavaNextProcessor

    from conftest import FIXTURES

    processor = LlavaNextProcessor(image_processor=LlavaNextImageProcessor(),
                                   tokenizer=AutoTokenizer.from_pretrained(str(FIXTURES / "vicuna_tiny")),
                                   patch_size=14, vision_feature_select_strategy="default",
                                   num_additional_image_tokens=1)  # llava-hf processor_config.json
    config = hired.DropConfig(budget_rate=1.0)
    rng = random.Random(7)
    for height, width in [(600, 600), (150, 380), (500, 240), (1, 1), (3000, 17)] + [
        (rng.randint(1, 2500), rng.randint(1, 2500)) for _ in range(200)
    ]:
        stock = processor._get_number_of_features(height, width, 336, 336) - 1  # CLS, strategy default
        assert hired.num_image_tokens((height, width), config) == stock, (height, width)
    assert hired.num_image_tokens((600, 600), hired.DropConfig(budget_rate=0.2)) == 624
    assert hired.num_image_tokens((600, 600), hired.DropConfig(newline="none")) == 576
    assert hired.num_image_tokens((600, 600), grid_pinpoints=[]) == 115 + 1  # one partition


def test_counts_that_depend_on_the_scores_are_refused_by_name():
    with pytest.raises(ValueError, match="mode"):
        hired.num_image_tokens((600, 600), hired.DropConfig(mode="reference"))
    with pytest.raises(ValueError, match="kept_rows"):
        hired.num_image_tokens((600, 600), hired.DropConfig(newline="kept_rows"))


@pytest.mark.parametrize(
    "kwargs, culprit",
    [
        ({"budget_rate": 0.0}, "budget_rate"),
        ({"budget_rate": 1.5}, "budget_rate"),
        ({"budget_rate": float("nan")}, "budget_rate"),
        ({"budget_tokens": -1}, "budget_tokens"),
        ({"budget_rate": 0.2, "budget_tokens": 9}, "budget_tokens"),
        ({"alpha": 2.0}, "alpha"),
        ({"mode": "fastest"}, "mode"),
        ({"newline": "sometimes"}, "newline"),
        ({"mode": "reference", "budget_tokens": 9}, "budget_tokens"),
    ],
)
def test_drop_config_is_validated_on_construction(kwargs, culprit):
    with pytest.raises(ValueError, match=culprit):
        hired.DropConfig(**kwargs)


def test_drop_config_defaults():
    config = hired.DropConfig()
    assert (config.budget_rate, config.budget_tokens, config.alpha, config.mode, config.newline) == (
        0.2, None, 0.5, "exact", "every_row")
    assert hired.DropConfig(budget_tokens=100).budget_rate is None
    with pytest.raises(TypeError, match="mode"):
        hired.DropConfig(mode=1)


def test_bad_tensors_and_layouts_are_named(sample):
    init, final = sample["init_cls_attn"], sample["final_cls_attn"]
    cases = [
        (lambda: hired.select(init[0], final, [5], [[600, 600]]), ValueError, "init_cls_attn"),
        (lambda: hired.select(init, final[:4], [5], [[600, 600]]), ValueError, "final_cls_attn"),
        (lambda: hired.select(init.long(), final, [5], [[600, 600]]), ValueError, "dtype"),
        (lambda: hired.select(init, final, [4], [[600, 600]]), ValueError, "num_partitions"),
        (lambda: hired.select(init, final, [5]), ValueError, "image_sizes|grid_shapes"),
        (lambda: hired.select(init, final, [5], [[600, 0]]), ValueError, "image_sizes"),
        (lambda: hired.select(init, final, [5.0], [[600, 600]]), TypeError, "num_partitions"),
        (lambda: hired.select(init, final, [5], [[600, 600, 1]]), TypeError, "image_sizes"),
        (lambda: hired.select(init, final, [5], [[600, 600]], config="fast"), TypeError, "config"),
        (lambda: hired.select(init, final, [5], grid_shapes=[[3, 3]]), ValueError, "grid_shapes|num_partitions"),
        (lambda: hired.select_qk(init, init, final, final, 3, [5], [[600, 600]]), ValueError, "heads|q"),
        (lambda: hired.cls_attention(torch.randn(2, 10, 8), torch.randn(2, 10, 6), 2), ValueError, "k"),
        (lambda: hired.qk_attention(torch.randn(2, 10, 8), torch.randn(2, 10, 8), 3), ValueError, "heads"),
        (lambda: hired.qk_attention(torch.full((1, 4, 2), float("nan")), torch.ones(1, 4, 2), 1), ValueError,
         "row 0, head 0, key 0 is not finite"),
        (lambda: hired.num_image_tokens((600,)), TypeError, "image_size"),
        (lambda: hired.num_image_tokens((600, 600), patch_px=5), ValueError, "patch_px"),
    ]
    for call, kind, culprit in cases:
        with pytest.raises(kind, match=culprit):
            call()


def test_bad_selections_are_refused_before_packing(sample):
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    features = torch.randn(5, 576, 8)
    broken = [
        (selection.kept.flip(0), "ascending"),
        (selection.kept + 576, r"\[0, 576\)"),
    ]
    for kept, culprit in broken:
        bad = hired.Selection(**{**vars(selection), "kept": kept})
        with pytest.raises(ValueError, match=culprit):
            hired.gather(bad, features, torch.zeros(8))
    short = hired.Selection(**{**vars(selection), "kept_offsets": selection.kept_offsets[:-1]})
    with pytest.raises(ValueError, match="kept_offsets"):
        hired.gather(short, features, torch.zeros(8))
    with pytest.raises(ValueError, match="features"):
        hired.gather(selection, torch.randn(5, 575, 8), torch.zeros(8))
    with pytest.raises(ValueError, match="image_newline"):
        hired.gather(selection, features)
    with pytest.raises(TypeError, match="selection"):
        hired.gather("kept", features)


def test_draw_selection_is_the_overlay_hired_select_writes(sample, tmp_path):
    """The same picture, pixel for pixel, as the C++ CLI draws from the image file."""
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    picture = hired.draw_selection(selection, sample_tiles())
    png = tmp_path / "overlay.png"
    subprocess.run([tool("hired_select"), SAMPLE, "--overlay", png, "--image", SAMPLE_IMAGE], check=True,
                   capture_output=True)
    assert picture.dtype == torch.uint8 and picture.dim() == 3 and picture.size(2) == 3
    assert numpy.array_equal(picture.numpy(), numpy.asarray(PIL.Image.open(png).convert("RGB")))


def test_draw_selection_puts_images_one_below_the_other(sample):
    init, final = (torch.cat([sample[name]] * 2) for name in ("init_cls_attn", "final_cls_attn"))
    both = hired.select(init, final, [5, 5], [[600, 600], [600, 600]])
    one = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    tiles = sample_tiles()
    assert torch.equal(hired.draw_selection(both, torch.cat([tiles, tiles])), torch.cat([hired.draw_selection(one, tiles)] * 2))


def test_draw_selection_of_single_partitions_dims_what_was_dropped():
    """LLaVA-1.5's layout (one partition, no grid): each image's tile sits below an 8 px margin
    and its 20 px label strip, 8 px in; kept 14 px patches keep their pixels, dropped ones a
    quarter of them."""
    torch.manual_seed(0)
    init, final = torch.rand(2, 4, 577).softmax(-1), torch.rand(2, 4, 577).softmax(-1)
    config = hired.DropConfig().for_single_partition()
    selection = hired.select(init, final, [1, 1], [[300, 500], [200, 200]], config=config, grid_pinpoints=[])
    tiles = torch.randint(0, 256, (2, 3, 336, 336), dtype=torch.uint8)
    picture = hired.draw_selection(selection, tiles)
    height = 8 + 20 + 336 + 8
    assert picture.shape == (2 * height, 8 + 336 + 3 * 8, 3)
    for image in range(2):
        kept = torch.zeros(576, dtype=torch.bool)
        kept[selection.kept_in(image)] = True
        bright = kept.reshape(24, 24).repeat_interleave(14, 0).repeat_interleave(14, 1)[..., None]
        pixels = tiles[image].permute(1, 2, 0)
        top = image * height + 28
        assert torch.equal(picture[top : top + 336, 8 : 8 + 336], torch.where(bright, pixels, pixels // 4))


def test_draw_selection_refuses_tiles_that_are_not_the_selections(sample):
    selection = hired.select(sample["init_cls_attn"], sample["final_cls_attn"], **layout(sample))
    tiles = sample_tiles()
    cases = [
        (lambda: hired.draw_selection(selection, tiles.float()), ValueError, "tiles: .*uint8"),
        (lambda: hired.draw_selection(selection, tiles[:4]), ValueError, "tiles: 4 partitions"),
        (lambda: hired.draw_selection(selection, tiles[..., :224, :224]), ValueError, r"tiles: shape \[5, 3, 224, 224\]"),
        (lambda: hired.draw_selection(selection, tiles[0]), ValueError, "tiles: shape"),
        (lambda: hired.draw_selection(selection, tiles.numpy()), TypeError, "tiles"),
        (lambda: hired.draw_selection(selection.kept, tiles), TypeError, "selection"),
    ]
    for call, kind, culprit in cases:
        with pytest.raises(kind, match=culprit):
            call()


ON_CUDA = pytest.mark.skipif(not (torch.cuda.is_available() and hired.cuda_kernels),
                             reason="needs a CUDA device and a package built with hired's kernels")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_CUDA)])
def test_opcheck_every_op(sample, device):
    """Schemas, fake implementations and autograd registration agree with what each op does, on
    the CPU path and on hired's CUDA kernels (draw_selection draws on the host only)."""
    init, final = (sample[name].float().to(device) for name in ("init_cls_attn", "final_cls_attn"))
    layout_args = ([5], [600, 600], None)
    config = hired.DropConfig().kwargs()
    selection = hired.ops.select(init, final, *layout_args, **config)
    _, kept, offsets, _, _ = selection
    torch.manual_seed(0)
    q, k = torch.randn(5, 577, 16, device=device), torch.randn(5, 577, 16, device=device)
    features, rows, newline = (torch.randn(5, 576, 8, device=device), torch.randn(576, 8, device=device),
                               torch.zeros(8, device=device))
    cases = [
        (hired.ops.select, (init, final, *layout_args), config),
        (hired.ops.select, (init, final, *layout_args), {**config, "mode": "reference"}),
        (hired.ops.select_qk, (q, k, q, k, 4, *layout_args), config),
        (hired.ops.gather, (features, kept, offsets, *layout_args, newline), {}),
        (hired.ops.gather, (features, kept, offsets, *layout_args), {"newline": "none"}),
        (hired.ops.pack_rows, (rows, kept, offsets, *layout_args, newline), {}),
        (hired.ops.cls_attention, (q, k, 4), {}),
        (hired.ops.qk_attention, (q, k, 4), {}),
    ]
    if device == "cpu":
        cases.append((hired.ops.draw_selection, (sample_tiles(), kept, offsets, *layout_args), {}))
    for op, args, kwargs in cases:
        torch.library.opcheck(op, args, kwargs)


def test_torch_compile_matches_eager(sample):
    init, final = sample["init_cls_attn"].float(), sample["final_cls_attn"].float()
    features, newline = torch.randn(5, 576, 8), torch.randn(8)

    def drop(init, final, features, newline):
        selection = hired.select(init, final, [5], [[600, 600]])
        return hired.gather(selection, features, newline).features

    compiled = torch.compile(drop, fullgraph=False)
    assert torch.equal(compiled(init, final, features, newline), drop(init, final, features, newline))


def test_a_different_torch_is_refused_with_what_to_do(monkeypatch):
    from hired import _build_info, _ops

    monkeypatch.setattr(_build_info, "torch_version", "0.0.1")
    with pytest.raises(ImportError, match="built against torch 0.0.1.*Rebuild"):
        _ops._load()
