// Fuzz target: a checkpoint's config.json, parsed as LlavaNextConfig::load parses it, then what
// the runtime derives from a config before it reads any weight: the feature layer, the patch
// grid, and the anyres grid of a few image sizes under the config's pinpoints and tile size.
#include "support.hpp"

#include "hired/geometry.hpp"
#include "hired/io/file.hpp"
#include "hired/io/llava_config.hpp"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  hired_fuzz::reject_bad_input([&] {
    const auto config = hired::io::LlavaNextConfig::from_json(
        hired::io::parse_json(hired_fuzz::as_text(data, size), "config.json"), "config.json");
    (void)config.vision_layers_run();
    (void)config.vision.num_patches();
    (void)config.to_json().dump();
    for (const hired::Size2 image : {hired::Size2{600, 600}, hired::Size2{1, 1 << 24},
                                     hired::Size2{1 << 24, 1 << 24}}) {
      (void)hired::anyres_grid_shape(image, config.image_grid_pinpoints, config.vision.image_size);
    }
  });
  return 0;
}
