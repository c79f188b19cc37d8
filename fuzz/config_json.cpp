// Fuzz target: a checkpoint's config.json, parsed as LlavaNextConfig::load parses it, then what
// the runtime derives from a config before it reads any weight: the feature layers, the patch
// grid, the projector's width, the attention windows, and for LLaVA-Next the anyres grid of a
// few image sizes under the config's pinpoints and tile size.
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
    (void)config.feature_hidden_states();
    (void)(config.vision_layers_run() + config.feature_layer_index());
    (void)(config.projector_input_size() + config.vision.num_patches());
    (void)(config.text.attention_window(0) + config.text.attention_window(config.text.num_hidden_layers - 1));
    if (!config.has_image_newline()) return;  // LLaVA-1.5: no anyres tiles
    for (const hired::Size2 image : {hired::Size2{600, 600}, hired::Size2{1, 1 << 24},
                                     hired::Size2{1 << 24, 1 << 24}}) {
      (void)hired::anyres_grid_shape(image, config.image_grid_pinpoints, config.vision.image_size);
    }
  });
  return 0;
}
