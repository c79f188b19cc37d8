// hired::TokenDropper and cls_attention against plain LibTorch restatements of what they
// replace, the Hugging Face packing fixture, and every rejection of bad tensors.
#include "hired/torch/token_dropper.hpp"

#include "hired/qk_scores.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/scores.hpp"

#include <ATen/ATen.h>
#include "support/drop_config.hpp"
#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

namespace {

using hired_test::expect_error;

using hired::DropConfig;
using hired::ImageBatch;
using hired::TokenDropper;

at::Tensor random_attention(std::int64_t partitions, std::int64_t heads, std::int64_t keys) {
  return at::randn({partitions, heads, keys}, at::kDouble).mul(3).softmax(-1).to(at::kFloat);
}

ImageBatch batch_of(std::vector<std::int64_t> partitions, std::vector<std::int64_t> sizes) {
  ImageBatch b;
  const auto n = static_cast<std::int64_t>(partitions.size());
  b.num_partitions = at::tensor(partitions);
  b.image_sizes = at::tensor(sizes).reshape({n, 2});
  return b;
}


/// LLaVA-Next's stock packing written with plain LibTorch ops, image by image.
at::Tensor stock_packing(const at::Tensor& features, const ImageBatch& images,
                         const at::Tensor& newline) {
  const std::int64_t side = 24, dim = features.size(2);
  std::vector<at::Tensor> parts;
  std::int64_t first = 0;
  for (std::int64_t b = 0; b < images.num_partitions.size(0); ++b) {
    const std::int64_t p = images.num_partitions[b].item<std::int64_t>();
    const hired::Size2 size{(*images.image_sizes)[b][0].item<std::int64_t>(),
                            (*images.image_sizes)[b][1].item<std::int64_t>()};
    const at::Tensor base = features[first];
    if (p == 1) {
      parts.push_back(at::cat({base, newline.unsqueeze(0)}));
    } else {
      const hired::GridShape g = hired::anyres_grid_shape(size, images.grid_pinpoints, 336);
      at::Tensor grid = features.slice(0, first + 1, first + p)
                            .view({g.rows, g.cols, side, side, dim})
                            .permute({4, 0, 2, 1, 3})
                            .reshape({dim, g.rows * side, g.cols * side});
      const hired::TokenBox box = hired::unpad_box(size, g.rows * side, g.cols * side);
      grid = grid.slice(1, box.row_begin, box.row_end).slice(2, box.col_begin, box.col_end);
      grid = at::cat({grid, newline.view({dim, 1, 1}).expand({dim, grid.size(1), 1})}, 2);
      parts.push_back(base);
      parts.push_back(grid.flatten(1, 2).t());
    }
    first += p;
  }
  return at::cat(parts);
}

TEST(ClsAttention, EqualsRowZeroOfTheFullSoftmaxMap) {
  at::manual_seed(1);
  const std::int64_t partitions = 3, keys = 50, heads = 4, dim = 8;
  const at::Tensor q = at::randn({partitions, keys, heads * dim});
  const at::Tensor k = at::randn({partitions, keys, heads * dim});
  const at::Tensor row = hired::cls_attention(q, k, heads);
  ASSERT_EQ(row.sizes(), (at::IntArrayRef{partitions, heads, keys}));

  const at::Tensor qh = q.to(at::kDouble).view({partitions, keys, heads, dim}).transpose(1, 2);
  const at::Tensor kh = k.to(at::kDouble).view({partitions, keys, heads, dim}).transpose(1, 2);
  const at::Tensor full = at::softmax(at::matmul(qh, kh.transpose(2, 3)) / std::sqrt(double(dim)), -1);
  EXPECT_TRUE(at::allclose(row.to(at::kDouble), full.select(2, 0), 1e-5, 1e-7));
  EXPECT_TRUE(at::allclose(row.sum(-1), at::ones({partitions, heads}), 1e-5, 1e-6));
}

TEST(ClsAttention, AcceptsHalfInputsAndComputesInFloat) {
  at::manual_seed(2);
  const at::Tensor q = at::randn({2, 10, 8}).to(at::kHalf), k = at::randn({2, 10, 8}).to(at::kHalf);
  const at::Tensor row = hired::cls_attention(q, k, 2);
  EXPECT_EQ(row.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(row, hired::cls_attention(q.to(at::kFloat), k.to(at::kFloat), 2)));
}

TEST(TokenDropper, RateOneEveryRowIsStockPackingExactly) {
  at::manual_seed(3);
  // 600x600 (2x2, no padding), 600x400 (padded columns), 250x600 (1x2, padded rows), P = 1.
  const ImageBatch images = batch_of({5, 5, 3, 1}, {600, 600, 600, 400, 250, 600, 336, 336});
  const std::int64_t rows = 14, dim = 6;
  const at::Tensor features = at::randn({rows, 576, dim});
  const at::Tensor newline = at::randn({dim});
  const TokenDropper dropper(hired_test::drop_config(1.0));
  const auto selection = dropper.select(random_attention(rows, 2, 577), random_attention(rows, 2, 577), images);
  const auto packed = dropper.gather(selection, features, newline);
  const at::Tensor expected = stock_packing(features, images, newline);
  ASSERT_EQ(packed.features.sizes(), expected.sizes());
  EXPECT_TRUE(at::equal(packed.features, expected));
  EXPECT_EQ(packed.lengths.sum().item<std::int64_t>(), expected.size(0));
}

TEST(TokenDropper, RateOneMatchesTransformersPackImageFeaturesFixture) {
  const hired::io::SafeTensors file = hired::io::SafeTensors::load(HIRED_FIXTURES_DIR "/stock_packing.safetensors");
  auto tensor = [&](const std::string& name) {
    const hired::io::TensorView& t = file.at(name);
    if (t.dtype() == hired::io::Dtype::F32) {
      std::vector<float> v = t.to_float();
      return at::tensor(v).reshape(t.shape());
    }
    std::vector<std::int64_t> v = t.to_int64();
    return at::tensor(v).reshape(t.shape());
  };
  ImageBatch images;
  images.num_partitions = tensor("num_partitions");
  images.image_sizes = tensor("image_sizes");
  const at::Tensor pins = tensor("grid_pinpoints");
  images.grid_pinpoints.clear();
  for (std::int64_t i = 0; i < pins.size(0); ++i)
    images.grid_pinpoints.push_back({pins[i][0].item<std::int64_t>(), pins[i][1].item<std::int64_t>()});
  const at::Tensor features = tensor("image_features");
  const std::int64_t rows = features.size(0);

  const TokenDropper dropper(hired_test::drop_config(1.0));
  const auto selection = dropper.select(random_attention(rows, 2, 577), random_attention(rows, 2, 577), images);
  const auto packed = dropper.gather(selection, features, tensor("image_newline"));
  EXPECT_TRUE(at::equal(packed.features, tensor("packed")));
  EXPECT_TRUE(at::equal(packed.lengths, tensor("packed_lengths")));
}

TEST(TokenDropper, SelectionAgreesWithTheCoreOnHeadSums) {
  at::manual_seed(4);
  const ImageBatch images = batch_of({5, 3}, {600, 600, 250, 600});
  const at::Tensor init = random_attention(8, 4, 577), fin = random_attention(8, 4, 577);
  for (const hired::Mode mode : {hired::Mode::exact, hired::Mode::reference}) {
    const DropConfig config = hired_test::drop_config(0.2, hired::NewlinePolicy::none, mode);
    const auto selection = TokenDropper(config).select(init, fin, images);
    const auto core = hired::select_tokens(
        hired::sum_heads(init.data_ptr<float>(), 8, 4, 577, "init"),
        hired::sum_heads(fin.data_ptr<float>(), 8, 4, 577, "final"),
        {{5, {2, 2}, hired::Size2{600, 600}}, {3, {1, 2}, hired::Size2{250, 600}}}, {336, 24},
        config);
    const at::Tensor kept = selection.kept.to(at::kInt).contiguous();
    EXPECT_EQ(std::vector<std::int32_t>(kept.data_ptr<std::int32_t>(),
                                        kept.data_ptr<std::int32_t>() + kept.numel()),
              core.kept);
    EXPECT_EQ(selection.kept_offsets[-1].item<std::int64_t>(), selection.kept.size(0));
    EXPECT_EQ(selection.budgets.sum().item<std::int64_t>(), selection.kept.size(0));
  }
}

TEST(TokenDropper, PaperCaseKeeps576Of2880AndPacksThemInOrder) {
  at::manual_seed(5);
  const ImageBatch images = batch_of({5}, {600, 600});
  const at::Tensor features = at::randn({5, 576, 4});
  for (const auto policy : {hired::NewlinePolicy::none, hired::NewlinePolicy::every_row,
                            hired::NewlinePolicy::kept_rows}) {
    const TokenDropper dropper(hired_test::drop_config(0.2, policy));
    const auto selection = dropper.select(random_attention(5, 3, 577), random_attention(5, 3, 577), images);
    EXPECT_EQ(selection.kept.size(0), 576);
    const auto packed = dropper.gather(selection, features, at::full({4}, -7.0f));
    const at::Tensor is_newline = packed.source_rows == -1;
    const std::int64_t newlines = is_newline.sum().item<std::int64_t>();
    EXPECT_EQ(packed.features.size(0), 576 + newlines);
    const std::int64_t expected_newlines[] = {0, 48, newlines};  // none, every_row, kept_rows
    EXPECT_EQ(newlines, expected_newlines[static_cast<int>(policy)]);
    EXPECT_LE(newlines, 48);
    // Every non-newline row is the feature row it names; newline rows are the embedding.
    const at::Tensor src = packed.source_rows.masked_select(~is_newline);
    EXPECT_TRUE(at::equal(packed.features.index({~is_newline}), features.reshape({-1, 4}).index_select(0, src)));
    EXPECT_TRUE(at::all(packed.features.index({is_newline}) == -7.0f).item<bool>());
  }
}

TEST(TokenDropper, HalfAndBfloatAttentionSelectLikeTheirFloatValues) {
  at::manual_seed(6);
  const ImageBatch images = batch_of({5}, {600, 600});
  for (const auto dtype : {at::kHalf, at::kBFloat16, at::kDouble}) {
    const at::Tensor init = random_attention(5, 2, 577).to(dtype), fin = random_attention(5, 2, 577).to(dtype);
    const TokenDropper dropper(hired_test::drop_config(0.2));
    EXPECT_TRUE(at::equal(dropper.select(init, fin, images).kept,
                          dropper.select(init.to(at::kFloat), fin.to(at::kFloat), images).kept));
  }
}

TEST(TokenDropper, RejectsBadTensorsNamingTheArgument) {
  const ImageBatch images = batch_of({5}, {600, 600});
  const at::Tensor good = random_attention(5, 2, 577);
  const TokenDropper dropper(hired_test::drop_config(0.2));
  auto select = [&](const at::Tensor& a, const at::Tensor& b, const ImageBatch& im) {
    return [&, a, b, im] { (void)dropper.select(a, b, im); };
  };
  expect_error(select(good.view({5, 1154}), good, images), "init_cls_attn");
  expect_error(select(good, good.slice(2, 0, 576), images), "final_cls_attn");
  expect_error(select(good.to(at::kInt), good, images), "init_cls_attn");
  expect_error(select(good, good.to(at::kMeta), images), "final_cls_attn");
  expect_error(select(good.slice(0, 0, 4), good.slice(0, 0, 4), images), "init_cls_attn");
  expect_error(select(good.slice(2, 0, 576), good.slice(2, 0, 576), images), "not a perfect square");
  at::Tensor bad = good.clone();
  bad[1][0][3] = std::numeric_limits<float>::quiet_NaN();
  expect_error(select(bad, good, images), "init_cls_attn");
  bad[1][0][3] = -0.5f;
  expect_error(select(good, bad, images), "final_cls_attn");
  bad[1][0][3] = std::numeric_limits<float>::infinity();
  expect_error(select(bad, good, images), "init_cls_attn");

  ImageBatch empty = images;
  empty.num_partitions = at::zeros({0}, at::kLong);
  empty.image_sizes = at::zeros({0, 2}, at::kLong);
  expect_error(select(good, good, empty), "num_partitions");
  ImageBatch mismatch = batch_of({3}, {600, 600});
  expect_error(select(good.slice(0, 0, 3), good.slice(0, 0, 3), mismatch), "num_partitions");
  ImageBatch float_sizes = images;
  float_sizes.image_sizes = at::tensor({600.0, 600.0}).reshape({1, 2});
  expect_error(select(good, good, float_sizes), "image_sizes");
  ImageBatch wrong_grid = images;
  wrong_grid.grid_shapes = at::tensor({std::int64_t{1}, std::int64_t{4}}).reshape({1, 2});
  expect_error(select(good, good, wrong_grid), "grid_shapes");

  const auto selection = dropper.select(good, good, images);
  expect_error([&] { (void)dropper.gather(selection, at::randn({5, 576, 4})); }, "image_newline");
  expect_error([&] { (void)dropper.gather(selection, at::randn({5, 576, 4}), at::randn({3})); },
               "image_newline");
  expect_error([&] { (void)dropper.gather(selection, at::randn({4, 576, 4}), at::randn({4})); },
               "features");
  expect_error([&] { (void)dropper.gather(selection, at::ones({5, 576, 4}, at::kInt), at::randn({4})); },
               "features");
  expect_error([&] { (void)hired::cls_attention(at::randn({2, 10, 8}), at::randn({2, 10, 6}), 2); }, "k");
  expect_error([&] { (void)hired::cls_attention(at::randn({2, 10, 8}), at::randn({2, 10, 8}), 3); }, "heads");
  expect_error([] { TokenDropper bad_alpha([] { DropConfig c; c.alpha = 1.5; return c; }()); }, "alpha");
}

// ---- From CLS queries and keys ----

using hired::QueryKeys;

/// One layer's q, k as the chunks of a fused qkv projection [P, N + 1, 3 * width] (so both
/// are strided views, read in place).
QueryKeys fused_qkv(std::int64_t partitions, std::int64_t heads, std::int64_t head_dim,
                    std::int64_t keys = 577) {
  const at::Tensor qkv = at::randn({partitions, keys, 3 * heads * head_dim});
  const auto chunks = qkv.chunk(3, -1);
  return {chunks[0], chunks[1], heads};
}

std::vector<std::int32_t> kept_of(const hired::TokenSelection& s) {
  const at::Tensor kept = s.kept.to(at::kInt).contiguous();
  return {kept.data_ptr<std::int32_t>(), kept.data_ptr<std::int32_t>() + kept.numel()};
}

// The CPU path is hired::qk_scores + select_tokens: full-image rows of the init layer only.
TEST(TokenDropperQk, SelectionIsTheCoreOnQkScores) {
  at::manual_seed(11);
  const ImageBatch images = batch_of({5, 3}, {600, 600, 250, 600});
  const QueryKeys init = fused_qkv(8, 4, 16), fin = fused_qkv(8, 4, 16);
  const auto view = [](const QueryKeys& in) {
    return hired::QueryKeyView{.q = in.q.data_ptr<float>(), .q_row_stride = in.q.stride(0),
                               .k = in.k.data_ptr<float>(), .k_row_stride = in.k.stride(0),
                               .k_token_stride = in.k.stride(1), .rows = 8, .heads = 4,
                               .head_dim = 16, .tokens = 576, .scale = hired::qk_scale(16)};
  };
  const std::vector<float> full = hired::qk_scores(view(init), "init", std::vector<std::int64_t>{0, 5});
  std::vector<float> init_scores(8 * 576, 0.0f);  // the full images' rows, 0 and 5
  std::copy_n(full.begin(), 576, init_scores.begin());
  std::copy_n(full.begin() + 576, 576, init_scores.begin() + 5 * 576);
  for (const hired::Mode mode : {hired::Mode::exact, hired::Mode::reference}) {
    const DropConfig config = hired_test::drop_config(0.2, hired::NewlinePolicy::none, mode);
    const auto core = hired::select_tokens(
        init_scores, hired::qk_scores(view(fin), "final"),
        {{5, {2, 2}, hired::Size2{600, 600}}, {3, {1, 2}, hired::Size2{250, 600}}}, {336, 24},
        config);
    const auto selection = TokenDropper(config).select(init, fin, images);
    EXPECT_EQ(kept_of(selection), core.kept);
    EXPECT_EQ(selection.budgets.sum().item<std::int64_t>(), selection.kept.size(0));
  }
}

// The same tokens as through cls_attention's rows (ATen's softmax): the two arithmetics differ
// by a few roundings, which moves no cut on continuous random scores.
TEST(TokenDropperQk, KeepsWhatTheAttentionRowsKeep) {
  at::manual_seed(12);
  const ImageBatch images = batch_of({5, 1}, {600, 600, 336, 336});
  const QueryKeys init = fused_qkv(6, 16, 8), fin = fused_qkv(6, 16, 8);
  const TokenDropper dropper(hired_test::drop_config(0.2));
  EXPECT_EQ(kept_of(dropper.select(init, fin, images)),
            kept_of(dropper.select(hired::cls_attention(init.q, init.k, 16),
                                   hired::cls_attention(fin.q, fin.k, 16), images)));
}

// Strided views, copies and 16-bit inputs select alike (widening to float is exact).
TEST(TokenDropperQk, LayoutsAndDtypesSelectAlike) {
  at::manual_seed(13);
  const ImageBatch images = batch_of({3}, {250, 600});
  const QueryKeys init = fused_qkv(3, 2, 8), fin = fused_qkv(3, 2, 8);
  const TokenDropper dropper(hired_test::drop_config(0.3));
  const std::vector<std::int32_t> kept = kept_of(dropper.select(init, fin, images));
  const auto copy = [](const QueryKeys& in) {
    return QueryKeys{in.q.contiguous(), in.k.contiguous(), in.heads};
  };
  EXPECT_EQ(kept_of(dropper.select(copy(init), copy(fin), images)), kept);
  // Channels not contiguous: a [P, width, N + 1] tensor transposed.
  const auto transposed = [](const QueryKeys& in) {
    return QueryKeys{in.q.transpose(1, 2).contiguous().transpose(1, 2),
                     in.k.transpose(1, 2).contiguous().transpose(1, 2), in.heads};
  };
  EXPECT_EQ(kept_of(dropper.select(transposed(init), transposed(fin), images)), kept);
  for (const auto dtype : {at::kHalf, at::kBFloat16}) {
    const auto narrow = [dtype](const QueryKeys& in) {
      return QueryKeys{in.q.to(dtype), in.k.to(dtype), in.heads};
    };
    const auto widened = [dtype](const QueryKeys& in) {
      return QueryKeys{in.q.to(dtype).to(at::kFloat), in.k.to(dtype).to(at::kFloat), in.heads};
    };
    EXPECT_EQ(kept_of(dropper.select(narrow(init), narrow(fin), images)),
              kept_of(dropper.select(widened(init), widened(fin), images)));
  }
}

// Tiles' init rows are never read; everything else that is read is checked.
TEST(TokenDropperQk, ReadsOnlyWhatTheBudgetsNeed) {
  at::manual_seed(14);
  const ImageBatch images = batch_of({5}, {600, 600});
  QueryKeys init = fused_qkv(5, 2, 8), fin = fused_qkv(5, 2, 8);
  const TokenDropper dropper(hired_test::drop_config(0.2));
  const std::vector<std::int32_t> kept = kept_of(dropper.select(init, fin, images));
  const float nan = std::numeric_limits<float>::quiet_NaN();
  init.k[2].fill_(nan);  // a tile of the init layer
  init.q[3].fill_(nan);
  EXPECT_EQ(kept_of(dropper.select(init, fin, images)), kept);
  init.k[0][7][3] = nan;  // the full image's key 7
  expect_error([&] { (void)dropper.select(init, fin, images); },
               {"init q/k", "row 0, head 0, key 7 is not finite"});
  init.k[0][7][3] = 0.0f;
  fin.q[4][0][9] = std::numeric_limits<float>::infinity();  // head 1 of the last tile
  expect_error([&] { (void)dropper.select(init, fin, images); },
               {"final q/k", "row 4, head 1"});
}

TEST(TokenDropperQk, RejectsBadTensorsNamingTheArgument) {
  const ImageBatch images = batch_of({5}, {600, 600});
  const QueryKeys good = fused_qkv(5, 2, 8);
  const TokenDropper dropper(hired_test::drop_config(0.2));
  const auto select = [&](const QueryKeys& init, const QueryKeys& fin,
                          const ImageBatch& im = {}) {
    return [&, init, fin, im] {
      (void)dropper.select(init, fin, im.num_partitions.defined() ? im : images);
    };
  };
  const auto with = [&](at::Tensor q, at::Tensor k, std::int64_t heads) {
    return QueryKeys{std::move(q), std::move(k), heads};
  };
  expect_error(select(with({}, good.k, 2), good), {"init.q", "undefined"});
  expect_error(select(with(good.q.flatten(1), good.k, 2), good), {"init.q", "[sum P, N + 1, H * d]"});
  expect_error(select(good, with(good.q, good.k.slice(1, 0, 576), 2)), {"final.k", "differs"});
  expect_error(select(good, with(good.q.to(at::kInt), good.k, 2)), {"final", "floating point"});
  expect_error(select(with(good.q, good.k.to(at::kMeta), 2), good), {"init.k", "meta"});
  expect_error(select(with(good.q, good.k, 3), good), {"init.heads", "does not divide"});
  expect_error(select(good, with(good.q, good.k, 4)), {"final.heads", "differs"});
  expect_error(select(good, with(good.q.slice(2, 0, 8), good.k.slice(2, 0, 8), 2)),
               {"final.q", "differs from init.q"});
  expect_error(select(with(good.q.slice(1, 0, 1), good.k.slice(1, 0, 1), 2),
                      with(good.q.slice(1, 0, 1), good.k.slice(1, 0, 1), 2)),
               {"init.q", "CLS token"});
  expect_error(select(with(good.q.slice(0, 0, 4), good.k.slice(0, 0, 4), 2),
                      with(good.q.slice(0, 0, 4), good.k.slice(0, 0, 4), 2)),
               {"init.q", "num_partitions sums to 5"});
  expect_error(select(with(good.q.slice(1, 0, 576), good.k.slice(1, 0, 576), 2),
                      with(good.q.slice(1, 0, 576), good.k.slice(1, 0, 576), 2)),
               "not a perfect square");
  ImageBatch sizeless = images;
  sizeless.image_sizes.reset();
  expect_error(select(good, good, sizeless), "image_sizes");
}

}  // namespace
