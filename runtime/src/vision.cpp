// CLIP vision tower and multimodal projector (transformers' CLIPVisionTransformer and
// LlavaNextMultiModalProjector), in ATen ops.
#include "hired/llava/vision.hpp"

#include "hired/error.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/ATen.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>

namespace hired::llava {
namespace {

at::Tensor quick_gelu(const at::Tensor& x) { return x * at::sigmoid(x * 1.702); }

}  // namespace

VisionTower::VisionTower(const LlavaNextConfig& config, Weights& weights)
    : config_(config.vision),
      keep_cls_(config.keeps_cls()),
      feature_states_(config.feature_hidden_states()),
      options_(weights.options()) {
  config.validate();
  const std::int64_t d = config_.hidden_size, p = config_.patch_size;
  const std::string base = "vision_tower.vision_model.";
  const auto take = [&](const std::string& name, at::IntArrayRef shape, Init init = Init::normal) {
    return weights.take(base + name, shape, init);
  };
  patch_weight_ = take("embeddings.patch_embedding.weight", {d, config_.num_channels, p, p});
  class_embedding_ = take("embeddings.class_embedding", {d});
  position_embedding_ = take("embeddings.position_embedding.weight", {config_.num_patches() + 1, d});
  pre_norm_weight_ = take("pre_layrnorm.weight", {d}, Init::ones);
  pre_norm_bias_ = take("pre_layrnorm.bias", {d}, Init::zeros);

  const std::int64_t f = config_.intermediate_size;
  for (std::int64_t i = 0; i < config.vision_layers_run(); ++i) {
    const std::string l = fmt::format("encoder.layers.{}.", i);
    Layer layer;
    layer.norm1_weight = take(l + "layer_norm1.weight", {d}, Init::ones);
    layer.norm1_bias = take(l + "layer_norm1.bias", {d}, Init::zeros);
    layer.qkv_weight = at::cat({take(l + "self_attn.q_proj.weight", {d, d}),
                                take(l + "self_attn.k_proj.weight", {d, d}),
                                take(l + "self_attn.v_proj.weight", {d, d})});
    layer.qkv_bias = at::cat({take(l + "self_attn.q_proj.bias", {d}, Init::zeros),
                              take(l + "self_attn.k_proj.bias", {d}, Init::zeros),
                              take(l + "self_attn.v_proj.bias", {d}, Init::zeros)});
    layer.out_weight = take(l + "self_attn.out_proj.weight", {d, d});
    layer.out_bias = take(l + "self_attn.out_proj.bias", {d}, Init::zeros);
    layer.norm2_weight = take(l + "layer_norm2.weight", {d}, Init::ones);
    layer.norm2_bias = take(l + "layer_norm2.bias", {d}, Init::zeros);
    layer.fc1_weight = take(l + "mlp.fc1.weight", {f, d});
    layer.fc1_bias = take(l + "mlp.fc1.bias", {f}, Init::zeros);
    layer.fc2_weight = take(l + "mlp.fc2.weight", {d, f});
    layer.fc2_bias = take(l + "mlp.fc2.bias", {d}, Init::zeros);
    layers_.push_back(std::move(layer));
  }
}

at::Tensor VisionTower::layer_forward(const Layer& layer, const at::Tensor& hidden, bool capture,
                                      at::Tensor* cls_rows) const {
  const std::int64_t partitions = hidden.size(0), tokens = hidden.size(1);
  const std::int64_t heads = config_.num_attention_heads, head_dim = config_.head_dim();
  const double eps = config_.layer_norm_eps;

  at::Tensor x = at::layer_norm(hidden, {config_.hidden_size}, layer.norm1_weight, layer.norm1_bias, eps);
  const std::vector<at::Tensor> qkv = at::linear(x, layer.qkv_weight, layer.qkv_bias).chunk(3, -1);
  // The CLS rows from this layer's own q and k, one query row per head (never N x N).
  if (capture) *cls_rows = hired::cls_attention(qkv[0], qkv[1], heads);
  const auto split_heads = [&](const at::Tensor& t) {
    return t.view({partitions, tokens, heads, head_dim}).transpose(1, 2);
  };
  // SDPA's default scale is 1/sqrt(head_dim), CLIP's; GPUs get fused kernels.
  at::Tensor attended = at::scaled_dot_product_attention(split_heads(qkv[0]), split_heads(qkv[1]),
                                                         split_heads(qkv[2]));
  attended = attended.transpose(1, 2).reshape({partitions, tokens, config_.hidden_size});
  at::Tensor h = hidden + at::linear(attended, layer.out_weight, layer.out_bias);

  x = at::layer_norm(h, {config_.hidden_size}, layer.norm2_weight, layer.norm2_bias, eps);
  x = at::linear(x, layer.fc1_weight, layer.fc1_bias);
  x = config_.hidden_act == "quick_gelu" ? quick_gelu(x) : at::gelu(x);  // "gelu": the erf form
  return h + at::linear(x, layer.fc2_weight, layer.fc2_bias);
}

VisionOutput VisionTower::forward(const at::Tensor& pixel_values,
                                  std::span<const std::int64_t> capture_layers) const {
  const std::int64_t size = config_.image_size, channels = config_.num_channels;
  check(pixel_values.defined(), "pixel_values: undefined tensor");
  check(pixel_values.dim() == 4 && pixel_values.size(1) == channels && pixel_values.size(2) == size &&
            pixel_values.size(3) == size,
        "pixel_values: shape {} must be [P, {}, {}, {}]", shape_text(pixel_values.sizes()), channels, size, size);
  check(pixel_values.size(0) > 0, "pixel_values: no partitions (shape {})", shape_text(pixel_values.sizes()));
  check(at::isFloatingType(pixel_values.scalar_type()), "pixel_values: dtype {} is not floating point",
        c10::toString(pixel_values.scalar_type()));
  check(at::isfinite(pixel_values).all().item<bool>(), "pixel_values: holds NaN or infinite values");
  const std::int64_t last = layers_run() - 1;
  for (const std::int64_t layer : capture_layers) {
    check(layer >= 0 && layer <= last,
          "capture_layers: layer {} is outside the layers run, 0..{} (the feature layer)", layer, last);
  }

  const at::Tensor pixels = pixel_values.to(options_.device, options_.dtype);
  const std::int64_t partitions = pixels.size(0), d = config_.hidden_size;
  // [P, D, g, g] -> [P, N, D], row-major patches after the CLS token.
  const at::Tensor patches =
      at::conv2d(pixels, patch_weight_, {}, config_.patch_size).flatten(2).transpose(1, 2);
  at::Tensor hidden = at::cat({class_embedding_.expand({partitions, 1, d}), patches}, 1) + position_embedding_;
  hidden = at::layer_norm(hidden, {d}, pre_norm_weight_, pre_norm_bias_, config_.layer_norm_eps);

  VisionOutput out;
  out.cls_attention.resize(capture_layers.size());
  // hidden_states[0] is the embeddings, hidden_states[i + 1] the output of layer i.
  std::vector<at::Tensor> states(feature_states_.size());
  const auto keep_state = [&](std::int64_t index) {
    for (std::size_t f = 0; f < feature_states_.size(); ++f)
      if (feature_states_[f] == index) states[f] = hidden;
  };
  keep_state(0);
  for (std::int64_t i = 0; i <= last; ++i) {
    at::Tensor rows;
    bool capture = false;
    for (const std::int64_t layer : capture_layers) capture = capture || layer == i;
    hidden = layer_forward(layers_[static_cast<std::size_t>(i)], hidden, capture, &rows);
    for (std::size_t c = 0; c < capture_layers.size(); ++c) {
      if (capture_layers[c] == i) out.cls_attention[c] = rows;
    }
    keep_state(i + 1);
  }
  const at::Tensor features = states.size() == 1 ? states[0] : at::cat(states, -1);
  out.features = keep_cls_ ? features : features.slice(1, 1);
  return out;
}

Projector::Projector(const LlavaNextConfig& config, Weights& weights)
    : in_features_(config.projector_input_size()), options_(weights.options()) {
  config.validate();
  const std::int64_t dv = in_features_, dt = config.text.hidden_size;
  weight1_ = weights.take("multi_modal_projector.linear_1.weight", {dt, dv});
  weight2_ = weights.take("multi_modal_projector.linear_2.weight", {dt, dt});
  if (config.multimodal_projector_bias) {
    bias1_ = weights.take("multi_modal_projector.linear_1.bias", {dt}, Init::zeros);
    bias2_ = weights.take("multi_modal_projector.linear_2.bias", {dt}, Init::zeros);
  }
}

at::Tensor Projector::forward(const at::Tensor& features) const {
  check(features.defined(), "features: undefined tensor");
  check(features.dim() >= 1 && features.size(-1) == in_features_,
        "features: shape {} must end in the vision width {}", shape_text(features.sizes()), in_features_);
  check(at::isFloatingType(features.scalar_type()), "features: dtype {} is not floating point",
        c10::toString(features.scalar_type()));
  const at::Tensor x = features.to(options_.device, options_.dtype);
  // at::gelu's default is the erf form, transformers' "gelu".
  return at::linear(at::gelu(at::linear(x, weight1_, bias1_)), weight2_, bias2_);
}

}  // namespace hired::llava
