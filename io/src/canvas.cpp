#include "hired/io/canvas.hpp"

#include "hired/error.hpp"

#include <algorithm>
#include <cctype>
#include <map>

namespace hired::io {
namespace {

/// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
const std::array<std::uint8_t, 7>* glyph(char c) {
  static const std::map<char, std::array<std::uint8_t, 7>> font = {
      {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},
      {'2', {14, 17, 1, 2, 4, 8, 31}},     {'3', {31, 2, 4, 2, 1, 17, 14}},
      {'4', {2, 6, 10, 18, 31, 2, 2}},     {'5', {31, 16, 30, 1, 1, 17, 14}},
      {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},
      {'8', {14, 17, 17, 14, 17, 17, 14}}, {'9', {14, 17, 17, 15, 1, 2, 12}},
      {'.', {0, 0, 0, 0, 0, 12, 12}},      {'%', {24, 25, 2, 4, 8, 19, 3}},
      {'/', {0, 1, 2, 4, 8, 16, 0}},       {'-', {0, 0, 0, 31, 0, 0, 0}},
      {'(', {2, 4, 8, 8, 8, 4, 2}},        {')', {8, 4, 2, 2, 2, 4, 8}},
      {'=', {0, 0, 31, 0, 31, 0, 0}},      {':', {0, 12, 12, 0, 12, 12, 0}},
      {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
      {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}},
      {'E', {31, 16, 16, 30, 16, 16, 31}}, {'F', {31, 16, 16, 30, 16, 16, 16}},
      {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
      {'I', {14, 4, 4, 4, 4, 4, 14}},      {'K', {17, 18, 20, 24, 20, 18, 17}},
      {'L', {16, 16, 16, 16, 16, 16, 31}}, {'M', {17, 27, 21, 21, 17, 17, 17}},
      {'N', {17, 17, 25, 21, 19, 17, 17}}, {'O', {14, 17, 17, 17, 17, 17, 14}},
      {'P', {30, 17, 17, 30, 16, 16, 16}}, {'R', {30, 17, 17, 30, 20, 18, 17}},
      {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
      {'U', {17, 17, 17, 17, 17, 17, 14}}, {'W', {17, 17, 17, 21, 21, 21, 10}},
      {'X', {17, 17, 10, 4, 10, 17, 17}},  {'Y', {17, 17, 10, 4, 4, 4, 4}},
  };
  const auto it = font.find(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return it == font.end() ? nullptr : &it->second;
}

}  // namespace

Canvas::Canvas(std::int64_t width, std::int64_t height, Colour background) {
  check(width > 0 && height > 0 && width <= (1 << 15) && height <= (1 << 15),
        "canvas: {} x {} pixels must be positive and at most 32768 a side", width, height);
  image_.width = width;
  image_.height = height;
  image_.pixels.resize(static_cast<std::size_t>(width * height * 3));
  fill(0, 0, width, height, background);
}

void Canvas::fill(std::int64_t x0, std::int64_t y0, std::int64_t x1, std::int64_t y1,
                  Colour colour) {
  for (std::int64_t y = std::max<std::int64_t>(0, y0); y < std::min(height(), y1); ++y)
    for (std::int64_t x = std::max<std::int64_t>(0, x0); x < std::min(width(), x1); ++x)
      std::copy(colour.begin(), colour.end(), image_.pixels.begin() + (y * width() + x) * 3);
}

void Canvas::paste(const RgbImage& image, std::int64_t x, std::int64_t y) {
  for (std::int64_t r = std::max<std::int64_t>(0, -y); r < image.height && y + r < height(); ++r)
    for (std::int64_t c = std::max<std::int64_t>(0, -x); c < image.width && x + c < width(); ++c)
      std::copy_n(image.pixels.begin() + (r * image.width + c) * 3, 3,
                  image_.pixels.begin() + ((y + r) * width() + x + c) * 3);
}

void Canvas::text(std::int64_t x, std::int64_t y, std::string_view text, int scale, Colour colour) {
  for (const char c : text) {
    if (const auto* g = glyph(c))
      for (int r = 0; r < 7; ++r)
        for (int col = 0; col < 5; ++col)
          if ((*g)[r] >> (4 - col) & 1)
            fill(x + col * scale, y + r * scale, x + (col + 1) * scale, y + (r + 1) * scale, colour);
    x += 6 * scale;
  }
}

std::int64_t Canvas::text_width(std::string_view text, int scale) {
  return static_cast<std::int64_t>(text.size()) * 6 * scale;
}

}  // namespace hired::io
