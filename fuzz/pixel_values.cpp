// Fuzz target: hired_generate's --pixel-values files, read as the runtime reads them
// (SafeTensors, then read_pixel_values against the model's tiling: LLaVA-Next's grid pinpoints,
// and none for LLaVA-1.5). The tiling is LLaVA-v1.6's pinpoints and tile divided by 24
// (14-pixel tiles), so that valid seeds stay small.
#include "support.hpp"

#include "hired/geometry.hpp"
#include "hired/io/pixel_values.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::int64_t kTile = 14;
  constexpr std::array<hired::Size2, 5> kPinpoints{
      {{14, 28}, {28, 14}, {28, 28}, {42, 14}, {14, 42}}};
  hired_fuzz::reject_bad_input([&] {
    const hired::io::SafeTensors file =
        hired::io::SafeTensors::from_bytes({data, data + size}, "pixel_values.safetensors");
    hired_fuzz::reject_bad_input([&] { (void)hired::io::read_pixel_values(file, kPinpoints, kTile); });
    hired_fuzz::reject_bad_input([&] { (void)hired::io::read_pixel_values(file, {}, kTile); });
  });
  return 0;
}
