// transformers' LLaVA-Next fixtures (tests/fixtures/llava/) as LibTorch tensors.
#pragma once

#include "hired/io/safetensors.hpp"

#include <ATen/ATen.h>

#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

namespace hired_test {

inline std::filesystem::path llava_fixture(const std::string& name) {
  return std::filesystem::path(HIRED_FIXTURES_DIR) / "llava" / name;
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

/// max |a - b| in double; shapes must agree.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return std::numeric_limits<double>::infinity();
  return (a.to(at::kCPU, at::kDouble) - b.to(at::kCPU, at::kDouble)).abs().max().item<double>();
}

}  // namespace hired_test
