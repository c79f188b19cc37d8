// hired's core alone (no LibTorch, no CUDA): how exact mode spends a 20% budget on a 600x600
// image, partition by partition, given the full image's layer-0 CLS scores.
#include "hired/budget.hpp"
#include "hired/geometry.hpp"
#include "hired/layout.hpp"

#include <cstdio>
#include <vector>

int main() {
  const hired::VisionGrid vision{336, 24};  // CLIP-L/336: 24 x 24 = 576 tokens per partition
  const std::vector<hired::Size2> pinpoints(hired::llava_v16_grid_pinpoints.begin(),
                                            hired::llava_v16_grid_pinpoints.end());
  hired::ImageLayout image;
  image.image_size = hired::Size2{600, 600};
  image.grid = hired::anyres_grid_shape(*image.image_size, pinpoints, vision.tile_px);
  image.partitions = 1 + image.grid.tiles();

  // Scores that favour the top-left of the full image: its marked tokens land on tile 1.
  std::vector<float> init_full(static_cast<std::size_t>(vision.tokens()));
  for (std::int64_t j = 0; j < vision.tokens(); ++j)
    init_full[j] = 1.0f / static_cast<float>(1 + j / vision.side + j % vision.side);

  const std::int64_t total = hired::exact_formula::total(image.partitions, vision.tokens(), 0.2);
  const hired::ImageBudget budget = hired::allocate_exact(init_full, image, vision, total, 0.5);
  std::printf("budgets: %lld partitions,", static_cast<long long>(image.partitions));
  for (const std::int64_t b : budget.partitions) std::printf(" %lld", static_cast<long long>(b));
  std::printf("; kept %lld of %lld requested\n", static_cast<long long>(budget.kept()),
              static_cast<long long>(budget.requested));
}
