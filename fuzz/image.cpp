// Fuzz target: image files through decode_image (stb_image, compiled here from the same header
// under the sanitizers) and the two preprocessings the runtime feeds them to: LLaVA-Next's
// anyres tiles (best resolution, bicubic resizes, tiles) and LLaVA-1.5's centre crop, each
// then CLIP-normalised.
//
// Two scale-downs keep an execution in milliseconds, with the same code paths: images are
// decoded under a limit of 2^16 pixels (the product's is kMaxImagePixels; the limit check
// itself is what refuses larger ones here), and cut into 28-pixel tiles (LLaVA-v1.6's grid
// pinpoints divided by 12, the same aspect ratios) instead of 336-pixel ones.
#include "support.hpp"

#include "hired/geometry.hpp"
#include "hired/io/image.hpp"

#include <array>
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::int64_t kMaxPixels = std::int64_t{1} << 16;
  constexpr std::int64_t kTile = 28;
  constexpr std::array<hired::Size2, 5> kPinpoints{
      {{28, 56}, {56, 28}, {56, 56}, {84, 28}, {28, 84}}};
  hired_fuzz::reject_bad_input([&] {
    const hired::io::RgbImage image = hired::io::decode_image({data, size}, "fuzz", kMaxPixels);
    (void)hired::io::normalize_clip(hired::io::anyres_tiles(image, kPinpoints, kTile));
    (void)hired::io::normalize_clip(hired::io::clip_center_crop(image, kTile, kTile));
  });
  return 0;
}
