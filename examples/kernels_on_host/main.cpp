// hired's kernels without any framework: the whole selection of a 600x600 image (2 x 2 tiles,
// 5 partitions of 576 tokens) from its CLS queries and keys, in the two launches a custom CUDA
// runtime would make, here run on the CPU by hired's emulator so the example runs anywhere.
//
// On a GPU the same code takes device buffers (cudaMalloc) for everything the kernels read or
// write, copies plan.images to the device (and passes that copy to select_params and
// pack_params), and replaces the two emu::launch calls by
//   hired::kernels::launch_select(select, stream);   // hired/kernels/launch.hpp,
//   hired::kernels::launch_pack(pack, stream);       // library hired_kernels
// then reads `status` (0: all written) and totals[0] / totals[1] (kept tokens, packed rows).
#include "hired/emulator/cuda.hpp"  // first: the CUDA dialect on the host
#include "hired/kernels/plan.hpp"
#include "hired/kernels/selection.cuh"
#include "hired/qk_scores.hpp"
#include "hired/selection.hpp"

#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  using namespace hired;
  using namespace hired::kernels;
  constexpr int kThreads = 64;  // the library's kernels use 256; the emulator is cheaper small
  const VisionGrid vision{336, 24};
  const std::int64_t tokens = vision.tokens(), keys = tokens + 1, heads = 2, head_dim = 8;
  const std::int64_t width = heads * head_dim, dim = 4;

  // The batch: one image, its layout as LLaVA-Next's anyres makes it.
  ImageLayout image;
  image.image_size = Size2{600, 600};
  image.grid = anyres_grid_shape(*image.image_size, llava_v16_grid_pinpoints, vision.tile_px);
  image.partitions = image.grid.tiles() + 1;
  const std::vector<ImageLayout> images{image};
  DropConfig config;  // exact mode, 20%, alpha 0.5, a newline after every row
  const SelectionPlan plan = plan_selection(images, vision, config, config.newline, true);

  // Inputs: q and k of layers 0 and 22 [P, N + 1, H * d], the features [P, N, D], the newline.
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  const auto random = [&](std::int64_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    for (float& x : v) x = normal(rng);
    return v;
  };
  const std::int64_t rows = plan.partitions;
  const std::vector<float> q0 = random(rows * keys * width), k0 = random(rows * keys * width);
  const std::vector<float> q22 = random(rows * keys * width), k22 = random(rows * keys * width);
  const std::vector<float> features = random(rows * tokens * dim), newline = random(dim);

  // Launch 1: scores, budgets and top-k per partition into the workspace.
  const auto layer = [&](const std::vector<float>& q, const std::vector<float>& k) {
    return QueryKeyRows<Element::f32>{.q = q.data(), .q_row_stride = keys * width,
                                      .k = k.data(), .k_row_stride = keys * width,
                                      .k_token_stride = width};
  };
  std::vector<unsigned char> workspace(static_cast<std::size_t>(plan.workspace_bytes));
  const QueryKeyInput<Element::f32> input{.init = layer(q0, k0), .final = layer(q22, k22),
                                          .heads = static_cast<std::int32_t>(heads),
                                          .head_dim = static_cast<std::int32_t>(head_dim),
                                          .scale = qk_scale(head_dim)};
  const auto select =
      select_params(plan, input, plan.images.data(), workspace.data(), plan.workspace_bytes);
  emu::launch(select_kernel<QueryKeyInput<Element::f32>, kThreads>, select_grid(select),
              dim3(kThreads), select);

  // Launch 2: the CSR selection and the packed features, sized from the plan (exact mode and
  // newline every_row: both follow from geometry, no read-back needed to allocate).
  const std::int64_t kept_total = plan.kept[0], packed_rows = plan.rows[0];
  std::vector<std::int64_t> budgets(static_cast<std::size_t>(rows)), kept(kept_total),
      kept_offsets(static_cast<std::size_t>(rows + 1)), partition_offsets(2),
      source_rows(packed_rows), lengths(1), totals(2);
  std::vector<float> packed(static_cast<std::size_t>(packed_rows * dim));
  unsigned status = 0;
  PackParams pack = pack_params(plan, plan.images.data(), workspace.data(), plan.workspace_bytes,
                                config.newline);
  pack.csr = {.budgets = budgets.data(), .kept = kept.data(), .kept_capacity = kept_total,
              .kept_offsets = kept_offsets.data(), .partition_offsets = partition_offsets.data()};
  pack.rows = {.features = features.data(), .row_stride = dim,
               .element_bytes = sizeof(float), .image_newline = newline.data(),
               .dim = static_cast<std::int32_t>(dim), .packed = packed.data(),
               .source_rows = source_rows.data(), .rows_capacity = packed_rows,
               .lengths = lengths.data()};
  pack.totals = totals.data();
  pack.status = &status;
  emu::launch(pack_kernel<std::uint32_t, kThreads>, pack_grid(pack), dim3(kThreads), pack);

  // The same selection on the host (what TokenDropper's CPU path runs): it must agree.
  const auto view = [&](const std::vector<float>& q, const std::vector<float>& k) {
    return QueryKeyView{.q = q.data(), .q_row_stride = keys * width, .k = k.data(),
                        .k_row_stride = keys * width, .k_token_stride = width, .rows = rows,
                        .heads = heads, .head_dim = head_dim, .tokens = tokens,
                        .scale = qk_scale(head_dim)};
  };
  const Selection host = select_tokens(qk_init_scores(view(q0, k0), images, "init"),
                                       qk_scores(view(q22, k22), "final"), images, vision,
                                       config);
  const bool agrees =
      status == 0 && std::vector<std::int32_t>(kept.begin(), kept.end()) == host.kept;

  std::printf("kernels_on_host: status %u, kept %lld of %lld tokens (budgets", status,
              static_cast<long long>(totals[0]), static_cast<long long>(rows * tokens));
  for (const std::int64_t b : budgets) std::printf(" %lld", static_cast<long long>(b));
  std::printf("), %lld packed rows with newlines; %s the CPU path\n",
              static_cast<long long>(totals[1]), agrees ? "agrees with" : "DIFFERS FROM");
  return agrees ? 0 : 1;
}
