// The LLaVA-Next splice: HiRED before the projector gives the stock image rows at rate 1.0,
// the masked packing of its selection below that, projects only the kept tokens, and rejects
// bad tensors by name.
#include "hired/torch/llava_next.hpp"

#include "support/drop_config.hpp"
#include "support/expect_error.hpp"
#include "support/masked_packing.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <functional>

#include <tuple>
#include <vector>

namespace {

using hired::ImageBatch;
using hired::NewlinePolicy;
using hired::TokenDropper;
using hired_test::expect_error;

constexpr std::int64_t kVisionWidth = 48, kTextWidth = 40, kTokens = 576;

/// A random Linear-GELU-Linear projector that counts the rows it is given.
struct CountingProjector {
  at::Tensor w1 = at::randn({kTextWidth, kVisionWidth}) * 0.1, b1 = at::randn({kTextWidth});
  at::Tensor w2 = at::randn({kTextWidth, kTextWidth}) * 0.1, b2 = at::randn({kTextWidth});
  std::shared_ptr<std::int64_t> rows_seen = std::make_shared<std::int64_t>(0);

  std::function<at::Tensor(const at::Tensor&)> fn() const {
    return [*this](const at::Tensor& x) {
      *rows_seen += x.size(0);
      return at::linear(at::gelu(at::linear(x, w1, b1)), w2, b2);
    };
  }
};

struct Batch {
  ImageBatch images;
  std::int64_t partitions = 0;
};

Batch batch_of(const std::vector<hired::Size2>& sizes) {
  Batch b;
  std::vector<std::int64_t> parts, flat;
  for (const hired::Size2& s : sizes) {
    const hired::GridShape g = hired::anyres_grid_shape(s, hired::llava_v16_grid_pinpoints, 336);
    parts.push_back(1 + g.tiles());
    flat.insert(flat.end(), {s.height, s.width});
    b.partitions += 1 + g.tiles();
  }
  b.images.num_partitions = at::tensor(parts);
  b.images.image_sizes = at::tensor(flat).reshape({static_cast<std::int64_t>(sizes.size()), 2});
  return b;
}

at::Tensor attention(std::int64_t partitions) {
  return at::randn({partitions, 4, kTokens + 1}, at::kDouble).mul(3).softmax(-1).to(at::kFloat);
}


const std::vector<std::vector<hired::Size2>> kBatches = {
    {{600, 600}}, {{250, 900}}, {{1000, 300}, {336, 336}}, {{600, 600}, {480, 640}, {30, 2000}}};

// Both modes: exact mode keeps every eligible token; reference mode, like the published
// pipeline, selects nothing away at 1.0 (its padding tokens vanish at unpad, as stock's).
TEST(LlavaNextSplice, RateOneGivesTheStockRowsBitForBit) {
  at::manual_seed(1);
  for (const auto mode : {hired::Mode::exact, hired::Mode::reference})
  for (const auto& sizes : kBatches) {
    const Batch b = batch_of(sizes);
    const CountingProjector projector;
    const at::Tensor features = at::randn({b.partitions, kTokens, kVisionWidth});
    const at::Tensor newline = at::randn({kTextWidth});
    const auto stock = hired::stock_llava_next(features, b.images, projector.fn(), newline);
    const TokenDropper dropper(hired_test::drop_config(1.0, hired::NewlinePolicy::every_row, mode));
    const auto ours = hired::hired_llava_next(dropper, features, attention(b.partitions),
                                              attention(b.partitions), b.images, projector.fn(),
                                              newline);
    ASSERT_EQ(ours.features.sizes(), stock.features.sizes())
        << sizes.size() << " images, " << hired::to_string(mode) << " mode";
    EXPECT_TRUE(at::equal(ours.features, stock.features));
    EXPECT_TRUE(at::equal(ours.lengths, stock.lengths));
    EXPECT_EQ(ours.visual_tokens, stock.visual_tokens);
    EXPECT_FALSE(stock.selection.has_value());
    ASSERT_TRUE(ours.selection.has_value());
  }
}

TEST(LlavaNextSplice, SixHundredSquareKeepsAllOrAFifthOfItsTokens) {
  at::manual_seed(2);
  const Batch b = batch_of({{600, 600}});
  const CountingProjector projector;
  const at::Tensor features = at::randn({5, kTokens, kVisionWidth}), newline = at::randn({kTextWidth});
  const auto full = hired::stock_llava_next(features, b.images, projector.fn(), newline);
  EXPECT_EQ(full.visual_tokens, std::vector<std::int64_t>{2880});  // 600x600 fills the 2x2 grid
  EXPECT_EQ(full.lengths.item<std::int64_t>(), 2880 + 48);         // + a newline per grid row
  const auto fifth = hired::hired_llava_next(TokenDropper(hired_test::drop_config(0.2)), features, attention(5),
                                             attention(5), b.images, projector.fn(), newline);
  EXPECT_EQ(fifth.visual_tokens, std::vector<std::int64_t>{576});
}

TEST(LlavaNextSplice, DroppedRowsEqualTheMaskedPackingOfTheSelection) {
  at::manual_seed(3);
  for (const NewlinePolicy policy :
       {NewlinePolicy::every_row, NewlinePolicy::kept_rows, NewlinePolicy::none}) {
    for (const hired::Mode mode : {hired::Mode::exact, hired::Mode::reference}) {
      for (const auto& sizes : kBatches) {
        for (const double rate : {0.05, 0.2, 0.5}) {
          const Batch b = batch_of(sizes);
          const CountingProjector projector;
          const at::Tensor features = at::randn({b.partitions, kTokens, kVisionWidth});
          const at::Tensor newline = at::randn({kTextWidth});
          const auto ours = hired::hired_llava_next(
              TokenDropper(hired_test::drop_config(rate, policy, mode)), features, attention(b.partitions),
              attention(b.partitions), b.images, projector.fn(), newline);
          const std::int64_t projected_rows = *projector.rows_seen;
          const at::Tensor all = projector.fn()(features.reshape({-1, kVisionWidth}))
                                     .reshape({b.partitions, kTokens, kTextWidth});
          const at::Tensor expected =
              hired_test::masked_packing(all, ours.selection->host, newline, policy);
          ASSERT_EQ(ours.features.sizes(), expected.sizes())
              << to_string(policy) << " rate " << rate;
          // The same rows through a GEMM of another height: equal to float rounding.
          EXPECT_TRUE(at::allclose(ours.features, expected, 1e-5, 1e-6));
          std::int64_t visual = 0;
          for (const std::int64_t v : ours.visual_tokens) visual += v;
          EXPECT_EQ(projected_rows, visual) << "the projector sees the kept tokens only";
          EXPECT_EQ(ours.lengths.sum().item<std::int64_t>(), expected.size(0));
        }
      }
    }
  }
}

// From q/k: the rows are the masked packing of the q/k selection, which TokenDropper::select
// makes from the same tensors; at rate 1.0 they are the stock rows.
TEST(LlavaNextSplice, FromQueryKeysProjectsTheQkSelection) {
  at::manual_seed(5);
  const Batch b = batch_of({{600, 600}, {250, 900}});
  const CountingProjector projector;
  const at::Tensor features = at::randn({b.partitions, kTokens, kVisionWidth});
  const at::Tensor newline = at::randn({kTextWidth});
  const auto qk = [&] {
    const auto chunks = at::randn({b.partitions, kTokens + 1, 3 * 32}).chunk(3, -1);
    return hired::QueryKeys{chunks[0], chunks[1], 4};
  };
  const hired::QueryKeys init = qk(), final = qk();
  const TokenDropper dropper(hired_test::drop_config(0.2, NewlinePolicy::kept_rows));
  const auto ours = hired::hired_llava_next(dropper, features, init, final, b.images,
                                            projector.fn(), newline);
  EXPECT_TRUE(at::equal(ours.selection->kept, dropper.select(init, final, b.images).kept));
  const at::Tensor all = projector.fn()(features.reshape({-1, kVisionWidth}))
                             .reshape({b.partitions, kTokens, kTextWidth});
  EXPECT_TRUE(at::allclose(ours.features, hired_test::masked_packing(all, ours.selection->host,
                                                                     newline,
                                                                     NewlinePolicy::kept_rows),
                           1e-5, 1e-6));
  const auto everything = hired::hired_llava_next(TokenDropper(hired_test::drop_config(1.0)),
                                                  features, init, final, b.images,
                                                  projector.fn(), newline);
  EXPECT_TRUE(at::equal(everything.features,
                        hired::stock_llava_next(features, b.images, projector.fn(), newline)
                            .features));
}

TEST(LlavaNextSplice, StockEqualsTheMaskedPackingOfEveryToken) {
  const Batch b = batch_of({{600, 600}, {250, 900}});
  at::manual_seed(4);
  const at::Tensor features = at::randn({b.partitions, kTokens, kVisionWidth});
  const at::Tensor newline = at::randn({kVisionWidth});
  const auto identity = [](const at::Tensor& x) { return x; };
  const auto stock = hired::stock_llava_next(features, b.images, identity, newline);
  // Rate 1.0 keeps every eligible token; masked packing of it is pack_image_features.
  const auto selection = TokenDropper(hired_test::drop_config(1.0)).select(attention(b.partitions),
                                                          attention(b.partitions), b.images);
  EXPECT_TRUE(at::equal(stock.features,
                        hired_test::masked_packing(features, selection.host, newline,
                                                   NewlinePolicy::every_row)));
}

TEST(LlavaNextSplice, RejectsBadTensorsByName) {
  const Batch b = batch_of({{600, 600}});
  const CountingProjector projector;
  const at::Tensor features = at::randn({5, kTokens, kVisionWidth}), newline = at::randn({kTextWidth});
  const at::Tensor attn = attention(5);
  const TokenDropper dropper(hired_test::drop_config(0.2));
  const auto run = [&](const at::Tensor& f, const at::Tensor& nl, hired::ProjectorRef p) {
    hired::hired_llava_next(dropper, f, attn, attn, b.images, p, nl);
  };
  expect_error([&] { run(features.slice(0, 0, 4), newline, projector.fn()); },
               {"features", "4 partitions", "5"});
  expect_error([&] { run(features.slice(1, 0, 575), newline, projector.fn()); },
               {"features", "575 tokens"});
  expect_error([&] { run(features.to(at::kLong), newline, projector.fn()); },
               {"features", "floating point"});
  expect_error([&] { run(features, newline.unsqueeze(0), projector.fn()); },
               {"image_newline", "[1, 40]"});
  expect_error([&] { run(features, newline, [](const at::Tensor& x) { return x; }); },
               {"projector", "expected [576, 40]"});
  expect_error([&] { hired::stock_llava_next(features[0], b.images, projector.fn(), newline); },
               {"features", "[576, 48]"});
  expect_error(
      [&] { hired::hired_llava_next(dropper, features, attn.slice(0, 0, 4), attn.slice(0, 0, 4),
                                    b.images, projector.fn(), newline); },
      {"init_cls_attn", "4 rows"});
}

}  // namespace
