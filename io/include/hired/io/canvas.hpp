// A small RGB drawing surface for hired's pictures (the benchmark's plot, the selection
// overlay): filled rectangles, pasted images, text in a built-in 5x7 bitmap font (upper case,
// digits and a few signs), written as PNG with stb_image_write. No font or image library.
#pragma once

#include "hired/io/image.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <string_view>

namespace hired::io {

using Colour = std::array<std::uint8_t, 3>;

class Canvas {
 public:
  Canvas(std::int64_t width, std::int64_t height, Colour background = {255, 255, 255});

  std::int64_t width() const { return image_.width; }
  std::int64_t height() const { return image_.height; }
  const RgbImage& image() const { return image_; }

  /// [x0, x1) x [y0, y1), clipped to the canvas.
  void fill(std::int64_t x0, std::int64_t y0, std::int64_t x1, std::int64_t y1, Colour colour);
  /// `image` with its top-left corner at (x, y), clipped to the canvas.
  void paste(const RgbImage& image, std::int64_t x, std::int64_t y);
  /// Text with its top-left corner at (x, y), `scale` pixels per font pixel (6 * scale per
  /// character); characters the font lacks are left blank.
  void text(std::int64_t x, std::int64_t y, std::string_view text, int scale = 2,
            Colour colour = {0, 0, 0});
  /// Width in pixels of `text` at `scale`.
  static std::int64_t text_width(std::string_view text, int scale = 2);

 private:
  RgbImage image_;
};

/// Writes an RGB image as PNG; hired::IoError naming the path when it cannot be written.
void write_png(const std::filesystem::path& path, const RgbImage& image);

}  // namespace hired::io
