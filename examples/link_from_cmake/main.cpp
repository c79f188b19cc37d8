// Existing LibTorch code calling hired: drop 80% of a 600x600 image's 2880 visual tokens
// before the projector. Random attention stands in for a real vision tower's.
#include <hired/torch/token_dropper.hpp>

#include <ATen/ATen.h>

#include <iostream>

int main() {
  at::manual_seed(0);
  const std::int64_t partitions = 5, heads = 16, keys = 577, width = 1024;  // CLIP-L/336, 2x2 grid
  const at::Tensor init_attn = at::randn({partitions, heads, keys}).softmax(-1);
  const at::Tensor final_attn = at::randn({partitions, heads, keys}).softmax(-1);
  const at::Tensor features = at::randn({partitions, keys - 1, width});
  const at::Tensor newline = at::zeros({width});

  hired::DropConfig config;  // exact mode, alpha 0.5, newline after every row
  config.budget = hired::Budget::rate(0.2);
  const hired::TokenDropper dropper(config);

  hired::ImageBatch images;
  images.num_partitions = at::tensor({partitions});
  images.image_sizes = at::tensor({600, 600}).reshape({1, 2});

  const hired::TokenSelection selection = dropper.select(init_attn, final_attn, images);
  const hired::PackedFeatures packed = dropper.gather(selection, features, newline);
  std::cout << "link_from_cmake: kept " << selection.kept.size(0) << " of "
            << partitions * (keys - 1) << " visual tokens; packed [" << packed.features.size(0)
            << ", " << packed.features.size(1) << "] with newline rows\n";
}
