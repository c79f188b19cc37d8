// LLaVA's vision side: the CLIP ViT (with CLS-row capture for HiRED) and the multimodal
// projector. Plain structs of ATen tensors; weights come from hired::llava::Weights.
#pragma once

#include "hired/llava/config.hpp"
#include "hired/llava/weights.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <span>
#include <vector>

namespace hired::llava {

struct VisionOutput {
  /// [P, N, Dv * F]: the F feature hidden states (vision_feature_layers) concatenated along the
  /// width, as transformers does; strategy "default" drops CLS, "full" keeps it
  /// ([P, N + 1, Dv * F]). In the weights' dtype, on their device.
  at::Tensor features;
  /// One per requested layer, in the order asked: [P, H, N + 1] float32 CLS-query attention
  /// rows (softmax over all N + 1 keys, CLS key first).
  std::vector<at::Tensor> cls_attention;
};

/// CLIP ViT as LLaVA uses it: patch embedding, class + position embeddings, pre-layernorm,
/// encoder layers up to the deepest feature layer (the rest, and post_layernorm, are never
/// loaded or run).
class VisionTower {
 public:
  /// Takes `vision_tower.vision_model.*` tensors for layers 0 .. vision_layers_run() - 1.
  VisionTower(const LlavaNextConfig& config, Weights& weights);

  /// `pixel_values` [P, 3, S, S] normalised pixels, any float dtype (converted to the weights'
  /// dtype and device). `capture_layers`: 0-based encoder layers (among those run) whose CLS
  /// rows to return, in that order; they come from the same forward pass, from each layer's
  /// own q and k. Throws hired::Error naming `pixel_values` / `capture_layers`.
  VisionOutput forward(const at::Tensor& pixel_values,
                       std::span<const std::int64_t> capture_layers = {}) const;

  /// Encoder layers run per forward (the deepest feature layer + 1).
  std::int64_t layers_run() const { return static_cast<std::int64_t>(layers_.size()); }
  const VisionConfig& config() const { return config_; }

 private:
  struct Layer {
    at::Tensor norm1_weight, norm1_bias;
    at::Tensor qkv_weight, qkv_bias;  // q, k, v projections stacked: one GEMM per layer
    at::Tensor out_weight, out_bias;
    at::Tensor norm2_weight, norm2_bias;
    at::Tensor fc1_weight, fc1_bias, fc2_weight, fc2_bias;
  };

  at::Tensor layer_forward(const Layer& layer, const at::Tensor& hidden, bool capture,
                           at::Tensor* cls_rows) const;

  VisionConfig config_;
  bool keep_cls_ = false;
  std::vector<std::int64_t> feature_states_;  // hidden_states indices, concatenated in order
  WeightOptions options_;
  at::Tensor patch_weight_;       // [D, 3, p, p], no bias
  at::Tensor class_embedding_;    // [D]
  at::Tensor position_embedding_; // [N + 1, D]
  at::Tensor pre_norm_weight_, pre_norm_bias_;
  std::vector<Layer> layers_;
};

/// multi_modal_projector: linear_1 (Dv * F -> Dt), GELU (erf), linear_2 (Dt -> Dt); biases
/// when the config says so.
class Projector {
 public:
  Projector(const LlavaNextConfig& config, Weights& weights);

  /// [..., Dv] -> [..., Dt], in the weights' dtype and on their device (the input is converted).
  at::Tensor forward(const at::Tensor& features) const;

 private:
  std::int64_t in_features_ = 0;
  WeightOptions options_;
  at::Tensor weight1_, bias1_, weight2_, bias2_;  // biases undefined without projector bias
};

}  // namespace hired::llava
