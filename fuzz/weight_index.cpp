// Fuzz target: a sharded checkpoint's model.safetensors.index.json, parsed as the runtime's
// Weights::open reads it (read_weight_index: read_json, then parse_weight_index).
#include "support.hpp"

#include "hired/io/file.hpp"
#include "hired/io/weight_index.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hired_fuzz::reject_bad_input([&] {
    const char* label = "model.safetensors.index.json";
    for (const auto& entry : hired::io::parse_weight_index(
             hired::io::parse_json(hired_fuzz::as_text(data, size), label), label))
      (void)(entry.tensor.size() + entry.file.size());
  });
  return 0;
}
