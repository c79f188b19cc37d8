// hired_bench --plot: TTFT and throughput per budget as two bar panels, one bar colour per batch
// size, written as a PNG with stb_image_write. Text is drawn with a 5x7 bitmap font (upper case,
// digits and a few signs), so the plot needs no font library.
#pragma once

#include "hired/error.hpp"

#include <stb/stb_image_write.h>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace hired_bench {

struct PlotPoint {
  double budget = 1;
  std::int64_t batch = 1;
  double ttft_s = 0, throughput = 0;
};

namespace plot_detail {

/// 5x7 glyphs, one byte per row, bit 4 = leftmost column.
inline const std::array<std::uint8_t, 7>* glyph(char c) {
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

struct Canvas {
  int width, height;
  std::vector<std::uint8_t> rgb;
  Canvas(int w, int h) : width(w), height(h), rgb(static_cast<std::size_t>(w * h * 3), 255) {}

  void fill(int x0, int y0, int x1, int y1, std::array<std::uint8_t, 3> colour) {
    for (int y = std::max(0, y0); y < std::min(height, y1); ++y)
      for (int x = std::max(0, x0); x < std::min(width, x1); ++x)
        std::copy(colour.begin(), colour.end(), rgb.begin() + (y * width + x) * 3);
  }
  /// Text at (x, y) (top left), `scale` pixels per font pixel.
  void text(int x, int y, std::string_view s, int scale = 2) {
    for (const char c : s) {
      if (const auto* g = glyph(c))
        for (int r = 0; r < 7; ++r)
          for (int col = 0; col < 5; ++col)
            if ((*g)[r] >> (4 - col) & 1)
              fill(x + col * scale, y + r * scale, x + (col + 1) * scale, y + (r + 1) * scale, {0, 0, 0});
      x += 6 * scale;
    }
  }
};

}  // namespace plot_detail

/// Two panels side by side: TTFT (s) and throughput (tokens/s) per budget, bars grouped by
/// budget, one colour per batch size. Throws hired::Error when the file cannot be written.
inline void write_plot(const std::filesystem::path& path, const std::vector<PlotPoint>& points) {
  using plot_detail::Canvas;
  hired::check(!points.empty(), "--plot: no rows to draw");
  constexpr int panel_w = 520, panel_h = 380, margin = 60;
  Canvas canvas(2 * panel_w, panel_h);
  std::vector<double> budgets;
  std::vector<std::int64_t> batches;
  for (const PlotPoint& p : points) {
    if (std::find(budgets.begin(), budgets.end(), p.budget) == budgets.end()) budgets.push_back(p.budget);
    if (std::find(batches.begin(), batches.end(), p.batch) == batches.end()) batches.push_back(p.batch);
  }
  std::sort(budgets.begin(), budgets.end(), std::greater<>());
  const std::array<std::array<std::uint8_t, 3>, 4> colours{{{70, 110, 200}, {220, 120, 40}, {60, 160, 90}, {160, 70, 160}}};
  for (int panel = 0; panel < 2; ++panel) {
    const int x0 = panel * panel_w + margin, y_base = panel_h - margin, plot_h = panel_h - 2 * margin;
    double top = 0;
    for (const PlotPoint& p : points) top = std::max(top, panel == 0 ? p.ttft_s : p.throughput);
    top = top > 0 ? top * 1.15 : 1;
    canvas.text(x0, 12, panel == 0 ? "TTFT (S) PER BUDGET" : "THROUGHPUT (TOK/S) PER BUDGET");
    canvas.fill(x0, y_base, x0 + panel_w - margin - 20, y_base + 2, {0, 0, 0});
    canvas.fill(x0, margin - 10, x0 + 2, y_base, {0, 0, 0});
    canvas.text(x0 + 6, margin - 8, fmt::format("{:.3g}", top / 1.15 * 1.0), 1);
    const int group_w = (panel_w - margin - 40) / static_cast<int>(budgets.size());
    const int bar_w = std::max(4, (group_w - 16) / static_cast<int>(batches.size()));
    for (std::size_t g = 0; g < budgets.size(); ++g) {
      const int gx = x0 + 10 + static_cast<int>(g) * group_w;
      canvas.text(gx, y_base + 10, fmt::format("{:.0f}%", budgets[g] * 100));
      for (std::size_t b = 0; b < batches.size(); ++b)
        for (const PlotPoint& p : points) {
          if (p.budget != budgets[g] || p.batch != batches[b]) continue;
          const double v = panel == 0 ? p.ttft_s : p.throughput;
          const int h = static_cast<int>(std::lround(v / top * plot_h));
          const int bx = gx + static_cast<int>(b) * bar_w;
          canvas.fill(bx, y_base - h, bx + bar_w - 3, y_base, colours[b % colours.size()]);
          canvas.text(bx, y_base - h - 10, fmt::format("{:.3g}", v), 1);
        }
    }
    for (std::size_t b = 0; b < batches.size(); ++b) {
      const int ly = y_base + 32;
      const int lx = x0 + static_cast<int>(b) * 110;
      canvas.fill(lx, ly, lx + 12, ly + 12, colours[b % colours.size()]);
      canvas.text(lx + 18, ly, fmt::format("BATCH {}", batches[b]), 1);
    }
  }
  hired::check(stbi_write_png(path.string().c_str(), canvas.width, canvas.height, 3, canvas.rgb.data(),
                              canvas.width * 3) != 0,
               "--plot: cannot write '{}'", path.string());
}

}  // namespace hired_bench
