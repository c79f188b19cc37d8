// The one place hired writes an image file (stb_image_write, compiled into Debian's libstb):
// apart from the canvas, so that drawing needs only the core (the op library draws too).
#include "hired/error.hpp"
#include "hired/io/canvas.hpp"

#include <stb/stb_image_write.h>

namespace hired::io {

void write_png(const std::filesystem::path& path, const RgbImage& image) {
  check(image.width > 0 && image.height > 0 &&
            image.pixels.size() == static_cast<std::size_t>(image.width * image.height * 3),
        "image: {} x {} with {} bytes is not an RGB image", image.width, image.height,
        image.pixels.size());
  const int ok = stbi_write_png(path.string().c_str(), static_cast<int>(image.width),
                                static_cast<int>(image.height), 3, image.pixels.data(),
                                static_cast<int>(image.width * 3));
  check<IoError>(ok != 0, "{}: cannot write the PNG file", path.string());
}

}  // namespace hired::io
