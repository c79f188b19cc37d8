// transformers' LLaVA fixtures (tests/fixtures/llava/) as LibTorch tensors.
#pragma once

#include "hired/io/safetensors.hpp"
#include "hired/llava/language.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

namespace hired_test {

/// `name` under tests/fixtures/llava ("vicuna_tiny", "divergence/llama_bias", "images").
inline std::filesystem::path llava_fixture(const std::string& name) {
  return std::filesystem::path(HIRED_FIXTURES_DIR) / "llava" / name;
}

/// The checkpoints with the llava-hf hub files' config.json field sets, one per checkpoint.
inline const std::vector<std::string>& hub_checkpoint_fixtures() {
  static const std::vector<std::string> names{"llava15_7b_tiny", "vicuna13b_tiny", "mistral7b_tiny",
                                              "yi34b_tiny",      "qwen72b_tiny",   "qwen110b_tiny"};
  return names;
}

/// One checkpoint per way of reading a config differently from transformers.
inline const std::vector<std::string>& divergence_fixtures() {
  static const std::vector<std::string> names{
      "divergence/tie_top_level",  "divergence/tie_text_only",       "divergence/tie_text_only_llava",
      "divergence/tie_both_stored",
      "divergence/sliding_window", "divergence/qwen2_window_layers", "divergence/llama_bias",
      "divergence/feature_layers", "divergence/llava_full"};
  return names;
}

/// A stored tensor as a CPU tensor: U8 stays uint8, I64 int64, floats become float32.
inline at::Tensor to_tensor(const hired::io::TensorView& view) {
  if (view.dtype() == hired::io::Dtype::U8) {
    const auto* data = reinterpret_cast<const std::uint8_t*>(view.bytes().data());
    return at::tensor(std::vector<std::uint8_t>(data, data + view.numel()), at::kByte).reshape(view.shape());
  }
  if (view.dtype() == hired::io::Dtype::I64) return at::tensor(view.to_int64(), at::kLong).reshape(view.shape());
  return at::tensor(view.to_float()).reshape(view.shape());
}

/// CLIP normalisation of the processor's uint8 tiles, in transformers' order and precision:
/// float32(float64(u8) * (1/255)), then (x - mean) / std in float32.
inline at::Tensor clip_normalise(const at::Tensor& u8) {
  const at::Tensor x = (u8.to(at::kDouble) * (1.0 / 255.0)).to(at::kFloat);
  const at::Tensor mean = at::tensor({0.48145466f, 0.4578275f, 0.40821073f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.26862954f, 0.26130258f, 0.27577711f}).view({1, 3, 1, 1});
  return (x - mean) / std;
}

/// A fixture's inputs.json: its samples' compact prompt ids and image files, in order.
struct FixtureInputs {
  std::vector<std::vector<std::int64_t>> prompts;
  std::vector<std::filesystem::path> images;

  explicit FixtureInputs(const std::filesystem::path& dir) {
    const nlohmann::json j = nlohmann::json::parse(std::ifstream(dir / "inputs.json"));
    const std::filesystem::path image_dir = dir / j.at("image_dir").get<std::string>();
    for (const auto& sample : j.at("samples")) {
      prompts.push_back(sample.at("prompt_ids").get<std::vector<std::int64_t>>());
      for (const auto& file : sample.at("images")) images.push_back(image_dir / file.get<std::string>());
    }
  }
};

/// How the fixtures' greedy tokens were made: 10 of them, EOS never stopping a row.
inline hired::llava::GenerationOptions ten_tokens() {
  hired::llava::GenerationOptions o;
  o.max_new_tokens = 10;
  o.stop_at_eos = false;
  return o;
}

/// A tensor's values as int64, in order (token ids, lengths).
inline std::vector<std::int64_t> ids_of(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

/// max |a - b| in double; shapes must agree.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

}  // namespace hired_test
