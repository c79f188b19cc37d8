// Where the runtime's parameters come from: a Hugging Face llava-hf checkpoint directory, or
// seeded random values for a config alone. Modules ask for each tensor by its llava-hf name
// and expected shape, so one code path builds a model either way.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hired::llava {

/// How a random tensor is initialised (checkpoints ignore it).
enum class Init { normal, ones, zeros };

/// The floating-point dtype `name` ("fp32" or "float32", "fp16" or "float16", "bf16" or
/// "bfloat16"); hired::Error naming `what` (e.g. "--dtype") otherwise.
at::ScalarType parse_dtype(std::string_view what, std::string_view name);
/// "fp32", "fp16", "bf16" (or the dtype's own name for others): the short names parse_dtype reads.
std::string dtype_name(at::ScalarType dtype);

/// "cpu" or "cuda"; hired::Error naming `what` for another name, or for cuda when this
/// LibTorch sees no CUDA device.
at::Device parse_device(std::string_view what, std::string_view name);

struct WeightOptions {
  at::ScalarType dtype = at::kFloat;  // every tensor is converted to this dtype...
  at::Device device = at::kCPU;       // ...and placed here
};

class Weights {
 public:
  /// Opens a llava-hf directory: `model.safetensors`, or the shards that
  /// `model.safetensors.index.json` lists. Names in the transformers-5 layout
  /// ("model.language_model.layers.0...", "lm_head.weight") are mapped to the llava-hf layout
  /// used by `take`. Throws hired::Error naming the file for a missing, truncated or corrupt
  /// file.
  static Weights open(const std::filesystem::path& dir, WeightOptions options = {});

  /// Seeded random values: a tensor depends only on (seed, name, shape); normal(0, stddev).
  /// They are drawn directly in the options' dtype on their device (no float32 staging copy),
  /// so another dtype or device kind gives other, equally distributed values.
  static Weights random(std::uint64_t seed, WeightOptions options = {}, double stddev = 0.02);

  /// The tensor `name` in llava-hf naming (e.g.
  /// "language_model.model.layers.0.self_attn.q_proj.weight",
  /// "vision_tower.vision_model.embeddings.patch_embedding.weight", "image_newline"), checked
  /// against `shape` and converted to the options' dtype and device. Throws hired::Error
  /// naming the tensor (and its file) when it is absent, has another shape, or is not a
  /// floating-point tensor.
  at::Tensor take(const std::string& name, at::IntArrayRef shape, Init init = Init::normal);

  /// Whether the checkpoint holds `name` (always true for random weights).
  bool contains(const std::string& name) const;

  /// Whether a checkpoint file holds `name` (never for random weights).
  bool in_checkpoint(const std::string& name) const;

  /// The checkpoint's tensors (llava-hf names) that no take() has asked for, sorted; none for
  /// random weights. A model checks them after it has taken what it computes with.
  std::vector<std::string> untaken() const;

  const WeightOptions& options() const;
  /// "random(seed=S)" or the directory.
  std::string origin() const;

 private:
  struct Impl;
  explicit Weights(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace hired::llava
