// hired::llava::VisionTower and Projector: against a plain restatement of CLIP (explicit
// attention maps) on seeded random weights, bad input, dtypes; and against transformers'
// fixtures (suite VisionParity).
#include "hired/io/llava_config.hpp"
#include "hired/llava/vision.hpp"
#include "hired/llava/weights.hpp"
#include "hired/torch/llava_next.hpp"
#include "hired/io/safetensors.hpp"

#include "support/expect_error.hpp"
#include "support/llava_fixtures.hpp"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#ifndef HIRED_FIXTURES_DIR
#error "HIRED_FIXTURES_DIR must be defined by the build"
#endif

namespace {

namespace fs = std::filesystem;
using namespace hired::llava;  // the runtime's vision tower and projector, under test
using hired::io::LlavaNextConfig;
using hired::io::StackShape;
using hired_test::expect_error;
using hired_test::max_abs_diff;
using hired_test::to_tensor;


/// CLIP-shaped but small: 56 px, 14 px patches (16 patches + CLS), width 16, 4 heads, 4 layers;
/// the feature layer is layer 2 (vision_feature_layer -2), as in CLIP-L's 22 of 24.
LlavaNextConfig tiny_config() {
  LlavaNextConfig c;
  static_cast<StackShape&>(c.vision) = {.hidden_size = 16, .intermediate_size = 32,
                                        .num_hidden_layers = 4, .num_attention_heads = 4};
  c.vision.image_size = 56;
  c.vision.patch_size = 14;
  static_cast<StackShape&>(c.text) = {.hidden_size = 24, .intermediate_size = 48,
                                      .num_hidden_layers = 1, .num_attention_heads = 2};
  c.text.vocab_size = 64;
  c.text.num_key_value_heads = 2;
  c.text.head_dim = 12;
  c.image_token_id = 10;
  c.image_grid_pinpoints = {{56, 56}, {56, 112}};
  c.validate();
  return c;
}

at::Tensor random_pixels(std::int64_t partitions, std::int64_t size, std::uint64_t seed = 3) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  return at::randn({partitions, 3, size, size}, generator, at::kFloat);
}

// --- A plain restatement of CLIP: patches by reshaping, explicit N x N attention maps. -------

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  const at::Tensor mean = x.mean(-1, true);
  const at::Tensor var = (x - mean).pow(2).mean(-1, true);
  return (x - mean) / at::sqrt(var + eps) * w + b;
}

at::Tensor dense(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::matmul(x, w.t()) + b;
}

struct Reference {
  at::Tensor features;             // the last layer run's output, CLS dropped
  std::vector<at::Tensor> cls;     // every layer run: [P, H, N + 1]
  std::vector<at::Tensor> states;  // hidden_states: the embeddings, then every layer's output
};

/// Computed in float64 from the same seeded weights (Weights::random is a function of name and
/// shape, so a second Weights object hands out the same tensors).
Reference reference_clip(const LlavaNextConfig& config, Weights weights, const at::Tensor& pixels) {
  const auto& v = config.vision;
  const std::int64_t d = v.hidden_size, p = v.patch_size, g = v.grid_side(), h = v.num_attention_heads;
  const std::int64_t hd = v.head_dim(), partitions = pixels.size(0), tokens = v.num_patches() + 1;
  const std::string base = "vision_tower.vision_model.";
  const auto take = [&](const std::string& name, at::IntArrayRef shape, Init init = Init::normal) {
    return weights.take(base + name, shape, init).to(at::kDouble);
  };
  const at::Tensor x = pixels.to(at::kDouble);
  const at::Tensor patches = x.reshape({partitions, 3, g, p, g, p})
                                 .permute({0, 2, 4, 1, 3, 5})
                                 .reshape({partitions, g * g, 3 * p * p});
  const at::Tensor patch_weight = take("embeddings.patch_embedding.weight", {d, 3, p, p}).reshape({d, 3 * p * p});
  at::Tensor hidden = at::cat({take("embeddings.class_embedding", {d}).expand({partitions, 1, d}),
                               at::matmul(patches, patch_weight.t())},
                              1) +
                      take("embeddings.position_embedding.weight", {tokens, d});
  hidden = layer_norm(hidden, take("pre_layrnorm.weight", {d}, Init::ones),
                      take("pre_layrnorm.bias", {d}, Init::zeros), v.layer_norm_eps);
  Reference out;
  out.states.push_back(hidden);
  for (std::int64_t i = 0; i < config.vision_layers_run(); ++i) {
    const std::string l = fmt::format("encoder.layers.{}.", i);
    const auto proj = [&](const at::Tensor& in, const std::string& name, std::int64_t rows, std::int64_t cols) {
      return dense(in, take(l + name + ".weight", {rows, cols}), take(l + name + ".bias", {rows}, Init::zeros));
    };
    const at::Tensor y = layer_norm(hidden, take(l + "layer_norm1.weight", {d}, Init::ones),
                                    take(l + "layer_norm1.bias", {d}, Init::zeros), v.layer_norm_eps);
    const auto heads = [&](const at::Tensor& t) { return t.reshape({partitions, tokens, h, hd}).transpose(1, 2); };
    const at::Tensor q = heads(proj(y, "self_attn.q_proj", d, d));
    const at::Tensor k = heads(proj(y, "self_attn.k_proj", d, d));
    const at::Tensor val = heads(proj(y, "self_attn.v_proj", d, d));
    const at::Tensor map = at::softmax(at::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(hd)), -1);
    out.cls.push_back(map.select(2, 0));
    const at::Tensor attended = at::matmul(map, val).transpose(1, 2).reshape({partitions, tokens, d});
    hidden = hidden + proj(attended, "self_attn.out_proj", d, d);
    at::Tensor z = layer_norm(hidden, take(l + "layer_norm2.weight", {d}, Init::ones),
                              take(l + "layer_norm2.bias", {d}, Init::zeros), v.layer_norm_eps);
    z = proj(z, "mlp.fc1", v.intermediate_size, d);
    z = v.hidden_act == "gelu" ? 0.5 * z * (1 + at::erf(z / std::sqrt(2.0))) : z * at::sigmoid(1.702 * z);
    hidden = hidden + proj(z, "mlp.fc2", d, v.intermediate_size);
    out.states.push_back(hidden);
  }
  out.features = hidden.slice(1, 1);
  return out;
}

// --- VisionTower ------------------------------------------------------------------------------

TEST(VisionTower, MatchesAPlainRestatementOfClip) {
  const LlavaNextConfig config = tiny_config();
  Weights weights = Weights::random(11, {}, 0.2);
  const VisionTower tower(config, weights);
  EXPECT_EQ(tower.layers_run(), 3);  // layers 0..2; layer 3 is never loaded
  const at::Tensor pixels = random_pixels(3, 56);
  const std::vector<std::int64_t> capture{2, 0, 1};
  const VisionOutput out = tower.forward(pixels, capture);
  const Reference ref = reference_clip(config, Weights::random(11, {}, 0.2), pixels);

  EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{3, 16, 16}));
  EXPECT_EQ(out.features.scalar_type(), at::kFloat);
  EXPECT_LE(max_abs_diff(out.features, ref.features), 1e-4);
  ASSERT_EQ(out.cls_attention.size(), 3u);
  for (std::size_t c = 0; c < capture.size(); ++c) {
    const at::Tensor& rows = out.cls_attention[c];
    EXPECT_EQ(rows.sizes(), (std::vector<std::int64_t>{3, 4, 17}));
    EXPECT_EQ(rows.scalar_type(), at::kFloat);
    EXPECT_LE(max_abs_diff(rows, ref.cls[static_cast<std::size_t>(capture[c])]), 1e-6) << "layer " << capture[c];
  }
  EXPECT_TRUE(tower.forward(pixels, {}).cls_attention.empty());
}

TEST(VisionTower, FullStrategyKeepsClsAndPositiveFeatureLayerCounts) {
  LlavaNextConfig config = tiny_config();
  config.architecture = hired::io::Architecture::llava;  // "full" is LLaVA-1.5's only
  Weights weights = Weights::random(5);
  const at::Tensor pixels = random_pixels(1, 56);
  const VisionOutput dropped = VisionTower(config, weights).forward(pixels);
  config.vision_feature_select_strategy = "full";
  const VisionOutput full = VisionTower(config, weights).forward(pixels);
  EXPECT_EQ(full.features.sizes(), (std::vector<std::int64_t>{1, 17, 16}));
  EXPECT_TRUE(at::equal(full.features.slice(1, 1), dropped.features));
  // hidden_states[3] is the output of layer 2, as hidden_states[-2] is for 4 layers.
  config.vision_feature_layers = {3};
  const VisionTower positive(config, weights);
  EXPECT_EQ(positive.layers_run(), 3);
  EXPECT_TRUE(at::equal(positive.forward(pixels).features, full.features));
}

/// vision_feature_layer as a list: the listed hidden states side by side along the width, in
/// the order listed (transformers' torch.cat(hs_pool, dim=-1)), CLS dropped from each.
TEST(VisionTower, FeatureLayerListConcatenatesHiddenStatesAlongTheWidth) {
  LlavaNextConfig config = tiny_config();
  config.vision_feature_layers = {-1, 1, 0};  // hidden states 4, 1 and the embeddings
  config.vision.hidden_act = "gelu";
  Weights weights = Weights::random(13, {}, 0.2);
  const VisionTower tower(config, weights);
  EXPECT_EQ(tower.layers_run(), 4);
  const at::Tensor pixels = random_pixels(2, 56);
  const VisionOutput out = tower.forward(pixels);
  const Reference ref = [&] {
    LlavaNextConfig all = config;
    all.vision_feature_layers = {-1};
    return reference_clip(all, Weights::random(13, {}, 0.2), pixels);
  }();
  const at::Tensor want =
      at::cat({ref.states[4], ref.states[1], ref.states[0]}, -1).slice(1, 1);
  EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{2, 16, 48}));
  EXPECT_LE(max_abs_diff(out.features, want), 1e-4);
  EXPECT_EQ(Projector(config, weights).forward(out.features).sizes(), (std::vector<std::int64_t>{2, 16, 24}));
}

/// A llava-hf directory holding what the tiny config's tower and projector need, and nothing
/// else (no layer 3, no post_layernorm), with the values of Weights::random(seed, {}, 0.2).
fs::path write_vision_checkpoint(const std::string& tag, std::uint64_t seed) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("hired_vision_{}_{}", tag, ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  Weights source = Weights::random(seed, {}, 0.2);
  std::vector<hired::io::TensorData> tensors;
  const auto add = [&](const std::string& name, std::vector<std::int64_t> shape, Init init = Init::normal) {
    const at::Tensor t = source.take(name, shape, init).contiguous();
    tensors.push_back(hired::io::make_tensor_data(
        name, hired::io::Dtype::F32, shape, std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel())));
  };
  const std::string b = "vision_tower.vision_model.";
  add(b + "embeddings.patch_embedding.weight", {16, 3, 14, 14});
  add(b + "embeddings.class_embedding", {16});
  add(b + "embeddings.position_embedding.weight", {17, 16});
  add(b + "pre_layrnorm.weight", {16}, Init::ones);
  add(b + "pre_layrnorm.bias", {16}, Init::zeros);
  for (int i = 0; i < 3; ++i) {
    const std::string l = fmt::format("{}encoder.layers.{}.", b, i);
    for (const char* n : {"layer_norm1", "layer_norm2"}) {
      add(l + n + ".weight", {16}, Init::ones);
      add(l + n + ".bias", {16}, Init::zeros);
    }
    for (const char* n : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      add(l + "self_attn." + n + ".weight", {16, 16});
      add(l + "self_attn." + n + ".bias", {16}, Init::zeros);
    }
    add(l + "mlp.fc1.weight", {32, 16});
    add(l + "mlp.fc1.bias", {32}, Init::zeros);
    add(l + "mlp.fc2.weight", {16, 32});
    add(l + "mlp.fc2.bias", {16}, Init::zeros);
  }
  add("multi_modal_projector.linear_1.weight", {24, 16});
  add("multi_modal_projector.linear_2.weight", {24, 24});
  hired::io::write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir;
}

TEST(VisionTower, LoadsACheckpointWithoutTheLayersAfterTheFeatureLayer) {
  const LlavaNextConfig config = tiny_config();
  const fs::path dir = write_vision_checkpoint("layers", 21);
  Weights checkpoint = Weights::open(dir);
  Weights source = Weights::random(21, {}, 0.2);
  const at::Tensor pixels = random_pixels(2, 56);
  const VisionOutput from_file = VisionTower(config, checkpoint).forward(pixels);
  const VisionOutput from_random = VisionTower(config, source).forward(pixels);
  EXPECT_TRUE(at::equal(from_file.features, from_random.features));
  fs::remove_all(dir);
}

TEST(VisionTower, MiniPresetRunsTheRealTokenGeometry) {
  const LlavaNextConfig config = LlavaNextConfig::preset("mini");
  Weights weights = Weights::random(0);
  const VisionTower tower(config, weights);
  const std::vector<std::int64_t> capture{0, config.feature_layer_index()};
  const VisionOutput out = tower.forward(random_pixels(2, 336), capture);
  EXPECT_EQ(out.features.sizes(), (std::vector<std::int64_t>{2, 576, 128}));
  for (const at::Tensor& rows : out.cls_attention) {
    EXPECT_EQ(rows.sizes(), (std::vector<std::int64_t>{2, 4, 577}));
    EXPECT_LE(max_abs_diff(rows.sum(-1), at::ones({2, 4})), 1e-5);
  }
  EXPECT_EQ(Projector(config, weights).forward(out.features).sizes(), (std::vector<std::int64_t>{2, 576, 256}));
}

TEST(VisionTower, RejectsBadPixelValuesAndCaptureLayers) {
  const LlavaNextConfig config = tiny_config();
  Weights weights = Weights::random(1);
  const VisionTower tower(config, weights);
  const std::vector<std::int64_t> none;
  expect_error([&] { tower.forward(at::Tensor(), none); }, {"pixel_values", "undefined"});
  expect_error([&] { tower.forward(at::zeros({3, 56, 56}), none); }, {"pixel_values", "[3, 56, 56]", "[P, 3, 56, 56]"});
  expect_error([&] { tower.forward(at::zeros({1, 4, 56, 56}), none); }, {"pixel_values", "[1, 4, 56, 56]"});
  expect_error([&] { tower.forward(at::zeros({1, 3, 42, 42}), none); }, {"pixel_values", "[1, 3, 42, 42]"});
  expect_error([&] { tower.forward(at::zeros({0, 3, 56, 56}), none); }, {"pixel_values", "no partitions"});
  expect_error([&] { tower.forward(at::zeros({1, 3, 56, 56}, at::kByte), none); }, {"pixel_values", "Byte"});
  at::Tensor nan = at::zeros({2, 3, 56, 56});
  nan[1][2][5][7] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { tower.forward(nan, none); }, {"pixel_values", "NaN"});
  const std::vector<std::int64_t> layer3{0, 3};  // layer 3 follows the feature layer
  expect_error([&] { tower.forward(at::zeros({1, 3, 56, 56}), layer3); }, {"capture_layers", "3", "0..2"});
  const std::vector<std::int64_t> negative{-1};
  expect_error([&] { tower.forward(at::zeros({1, 3, 56, 56}), negative); }, {"capture_layers", "-1"});
}

TEST(VisionTower, RunsInBf16AndFp16AndAcceptsFloat64Pixels) {
  LlavaNextConfig config = tiny_config();
  config.multimodal_projector_bias = false;  // the checkpoint holds no projector biases
  const fs::path dir = write_vision_checkpoint("dtypes", 8);
  Weights fp32 = Weights::open(dir);
  const at::Tensor pixels = random_pixels(2, 56);
  const std::vector<std::int64_t> capture{0, 2};
  const VisionOutput want = VisionTower(config, fp32).forward(pixels, capture);
  const VisionOutput from_double = VisionTower(config, fp32).forward(pixels.to(at::kDouble), capture);
  EXPECT_TRUE(at::equal(from_double.features, want.features));

  const double scale = want.features.abs().max().item<double>();
  for (const auto dtype : {at::kBFloat16, at::kHalf}) {
    Weights narrow = Weights::open(dir, {.dtype = dtype});
    const VisionOutput got = VisionTower(config, narrow).forward(pixels, capture);
    EXPECT_EQ(got.features.scalar_type(), dtype);
    const double features_diff = max_abs_diff(got.features, want.features);
    EXPECT_LE(features_diff, 0.05 * scale) << c10::toString(dtype);
    for (std::size_t c = 0; c < capture.size(); ++c) {
      EXPECT_EQ(got.cls_attention[c].scalar_type(), at::kFloat);
      EXPECT_LE(max_abs_diff(got.cls_attention[c], want.cls_attention[c]), 0.02) << c10::toString(dtype);
    }
    const at::Tensor projected = Projector(config, narrow).forward(got.features);
    EXPECT_EQ(projected.scalar_type(), dtype);
    std::printf("[ dtype    ] %s: features max abs diff %.3g (max |x| %.3g)\n", c10::toString(dtype),
                features_diff, scale);
  }
  fs::remove_all(dir);
}

// --- Projector --------------------------------------------------------------------------------

TEST(Projector, IsLinearGeluLinear) {
  LlavaNextConfig config = tiny_config();
  Weights weights = Weights::random(4, {}, 0.3);
  const Projector projector(config, weights);
  at::Generator generator = at::detail::createCPUGenerator(9);
  const at::Tensor x = at::randn({2, 5, 16}, generator, at::kFloat);
  const at::Tensor w1 = weights.take("multi_modal_projector.linear_1.weight", {24, 16});
  const at::Tensor b1 = weights.take("multi_modal_projector.linear_1.bias", {24}, Init::zeros);
  const at::Tensor w2 = weights.take("multi_modal_projector.linear_2.weight", {24, 24});
  const at::Tensor b2 = weights.take("multi_modal_projector.linear_2.bias", {24}, Init::zeros);
  const at::Tensor h = dense(x.to(at::kDouble), w1.to(at::kDouble), b1.to(at::kDouble));
  const at::Tensor gelu = 0.5 * h * (1 + at::erf(h / std::sqrt(2.0)));
  const at::Tensor want = dense(gelu, w2.to(at::kDouble), b2.to(at::kDouble));
  const at::Tensor got = projector.forward(x);
  EXPECT_EQ(got.sizes(), (std::vector<std::int64_t>{2, 5, 24}));
  EXPECT_LE(max_abs_diff(got, want), 1e-5);

  expect_error([&] { projector.forward(at::zeros({4, 15})); }, {"features", "[4, 15]", "16"});
  expect_error([&] { projector.forward(at::zeros({4, 16}, at::kLong)); }, {"features", "Long"});
}

TEST(Projector, WithoutBiasTakesNoBias) {
  LlavaNextConfig config = tiny_config();
  config.multimodal_projector_bias = false;
  const fs::path dir = write_vision_checkpoint("nobias", 2);  // holds no projector biases
  Weights checkpoint = Weights::open(dir);
  const at::Tensor x = at::ones({3, 16});
  const at::Tensor w1 = checkpoint.take("multi_modal_projector.linear_1.weight", {24, 16});
  const at::Tensor w2 = checkpoint.take("multi_modal_projector.linear_2.weight", {24, 24});
  EXPECT_LE(max_abs_diff(Projector(config, checkpoint).forward(x),
                         at::matmul(at::gelu(at::matmul(x, w1.t())), w2.t())),
            1e-6);
  config.multimodal_projector_bias = true;
  expect_error([&] { Projector(config, checkpoint); }, {"multi_modal_projector.linear_1.bias"});
  fs::remove_all(dir);
}

// --- transformers' fixtures -------------------------------------------------------------------



void expect_fixture_parity(const std::string& name) {
  const fs::path dir = fs::path(HIRED_FIXTURES_DIR) / "llava" / name;
  const LlavaNextConfig config = LlavaNextConfig::load(dir / "config.json");
  const hired::io::SafeTensors expected = hired::io::SafeTensors::load((dir / "expected.safetensors").string());
  const auto want = [&](const char* tensor) { return to_tensor(expected.at(tensor)); };
  Weights weights = Weights::open(dir);
  const VisionTower tower(config, weights);
  const Projector projector(config, weights);

  const std::vector<std::int64_t> capture{0, config.feature_layer_index()};
  const VisionOutput out = tower.forward(hired_test::clip_normalise(want("pixel_values_u8")), capture);
  const double features = max_abs_diff(out.features, want("vision_features"));
  const double layer0 = max_abs_diff(out.cls_attention[0], want("cls_attn_layer0"));
  const double feature = max_abs_diff(out.cls_attention[1], want("cls_attn_feature"));
  EXPECT_LE(features, 1e-4);
  EXPECT_LE(layer0, 1e-5);
  EXPECT_LE(feature, 1e-5);

  // The projector through the stock packing (unpad + image_newline after every row).
  hired::ImageBatch images;
  images.num_partitions = want("num_partitions");
  images.image_sizes = want("image_sizes");
  images.grid_pinpoints = config.image_grid_pinpoints;
  images.tile_px = config.vision.image_size;
  const at::Tensor newline = weights.take("image_newline", {config.text.hidden_size});
  const hired::LlavaNextImageRows rows = hired::stock_llava_next(
      out.features, images, [&](const at::Tensor& f) { return projector.forward(f); }, newline);
  EXPECT_TRUE(at::equal(rows.lengths, want("packed_lengths")));
  const double packed = max_abs_diff(rows.features, want("packed_features"));
  EXPECT_LE(packed, 1e-4);
  std::printf("[ parity   ] %s max abs diff: vision_features %.3g, cls_attn_layer0 %.3g, "
              "cls_attn_feature %.3g, packed_features %.3g\n",
              name.c_str(), features, layer0, feature, packed);
}

TEST(VisionParity, VicunaTinyMatchesTransformers) { expect_fixture_parity("vicuna_tiny"); }

TEST(VisionParity, MistralTinyMatchesTransformers) { expect_fixture_parity("mistral_tiny"); }

}  // namespace
