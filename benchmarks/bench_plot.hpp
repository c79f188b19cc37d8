// hired_bench --plot: TTFT and throughput per budget as two bar panels, one bar colour per batch
// size, drawn on hired::io::Canvas (a PNG, text in its built-in bitmap font).
#pragma once

#include "hired/error.hpp"
#include "hired/io/canvas.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hired_bench {

struct PlotPoint {
  double budget = 1;
  std::int64_t batch = 1;
  double ttft_s = 0, throughput = 0;
};


/// Two panels side by side: TTFT (s) and throughput (tokens/s) per budget, bars grouped by
/// budget, one colour per batch size. Throws hired::IoError when the file cannot be written.
inline void write_plot(const std::filesystem::path& path, const std::vector<PlotPoint>& points) {
  using hired::io::Canvas;
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
  hired::io::write_png(path, canvas.image());
}

}  // namespace hired_bench
