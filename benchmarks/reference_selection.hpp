// The baseline of the selection-overhead benchmark: HiRED's selection written with plain
// LibTorch ops the way the published Python implementation works — the full softmax(QK^T)
// attention maps of both layers from q and k, a loop over images with host-side budget
// arithmetic, topk, boolean masks, and masked packing (unpadded, no newline rows).
// Shared by benchmarks/selection_overhead_bench.cpp and hired_bench.
#pragma once

#include "hired/geometry.hpp"
#include "hired/layout.hpp"
#include "hired/torch/llava_next.hpp"
#include "hired/torch/token_dropper.hpp"

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace hired_bench {

/// One batch at the paper's shapes: q/k of l_init and l_final [sum P, N + 1, H * d] and the
/// feature layer [sum P, N, D] of `images` 600x600 images (5 partitions each).
struct SelectionInputs {
  std::vector<hired::ImageLayout> layouts;
  hired::ImageBatch batch;
  std::int64_t heads = 16;
  at::Tensor q_init, k_init, q_final, k_final, features;

  static SelectionInputs paper_shapes(std::int64_t images, const at::TensorOptions& options,
                                      std::int64_t heads = 16, std::int64_t head_dim = 64,
                                      std::int64_t width = 1024) {
    SelectionInputs in;
    in.heads = heads;
    std::vector<std::int64_t> parts, sizes;
    for (std::int64_t b = 0; b < images; ++b) {
      in.layouts.push_back({5, {2, 2}, hired::Size2{600, 600}});
      parts.push_back(5);
      sizes.insert(sizes.end(), {600, 600});
    }
    in.batch.num_partitions = at::tensor(parts);
    in.batch.image_sizes = at::tensor(sizes).reshape({images, 2});
    const std::int64_t rows = 5 * images;
    const auto qk = [&] { return at::randn({rows, 577, heads * head_dim}, options); };
    in.q_init = qk(), in.k_init = qk(), in.q_final = qk(), in.k_final = qk();
    in.features = at::randn({rows, 576, width}, options);
    return in;
  }
};

/// The published formulation, reference-mode arithmetic: returns the packed kept features.
inline at::Tensor reference_selection(const SelectionInputs& in, double rate, double alpha) {
  const std::int64_t tokens = in.features.size(1), side = 24, dim = in.features.size(2);
  const std::int64_t head_dim = in.q_init.size(2) / in.heads;
  const auto cls_scores = [&](const at::Tensor& q, const at::Tensor& k) {
    const std::int64_t p = q.size(0), keys = q.size(1);
    const at::Tensor qh = q.reshape({p, keys, in.heads, head_dim}).transpose(1, 2);
    const at::Tensor kh = k.reshape({p, keys, in.heads, head_dim}).transpose(1, 2);
    // The whole [P, H, N+1, N+1] map, as output_attentions materialises it.
    const at::Tensor maps = at::softmax(at::matmul(qh, kh.transpose(2, 3)) / std::sqrt(double(head_dim)), -1);
    return maps.select(2, 0).slice(2, 1).sum(1);  // CLS row, patch keys, summed over heads
  };
  std::vector<at::Tensor> packed;
  std::int64_t first = 0;
  for (const hired::ImageLayout& image : in.layouts) {
    const std::int64_t parts = image.partitions;
    const at::Tensor init = cls_scores(in.q_init.slice(0, first, first + parts),
                                       in.k_init.slice(0, first, first + parts));
    const at::Tensor fin = cls_scores(in.q_final.slice(0, first, first + parts),
                                      in.k_final.slice(0, first, first + parts));
    const auto total = static_cast<std::int64_t>(double(parts * tokens) * rate);
    const std::int64_t base = std::min(static_cast<std::int64_t>(double(total) * alpha), tokens);
    const std::int64_t rest = std::min(total - base, (parts - 1) * tokens);
    at::Tensor mask = at::zeros({parts, tokens}, at::TensorOptions(at::kBool).device(init.device()));
    mask[0].index_fill_(0, std::get<1>(at::topk(fin[0], base)), true);
    if (rest > 0) {
      const auto marks_k = static_cast<std::int64_t>(double(tokens) * (1.0 - alpha));
      at::Tensor marks = at::zeros({tokens}, init.options());
      marks.index_fill_(0, std::get<1>(at::topk(init[0], marks_k)), 1.0);
      const at::Tensor counts = marks.reshape({parts - 1, -1}).sum(1).to(at::kFloat);
      const at::Tensor budgets = (counts / counts.sum() * float(rest)).to(at::kLong).clamp_max(tokens);
      for (std::int64_t t = 1; t < parts; ++t)
        mask[t].index_fill_(0, std::get<1>(at::topk(fin[t], budgets[t - 1].item<std::int64_t>())), true);
    }
    const at::Tensor feats = in.features.slice(0, first, first + parts);
    packed.push_back(feats[0].index({mask[0]}));
    if (parts > 1) {
      const std::int64_t gh = image.grid.rows, gw = image.grid.cols;
      const at::Tensor grid = feats.slice(0, 1).reshape({gh, gw, side, side, dim})
                                  .permute({0, 2, 1, 3, 4}).reshape({gh * side, gw * side, dim});
      const at::Tensor grid_mask = mask.slice(0, 1).reshape({gh, gw, side, side})
                                       .permute({0, 2, 1, 3}).reshape({gh * side, gw * side});
      const hired::TokenBox box = hired::tile_token_box(*image.image_size, image.grid, {336, side});
      const auto crop = [&](const at::Tensor& t) {
        return t.slice(0, box.row_begin, box.row_end).slice(1, box.col_begin, box.col_end);
      };
      packed.push_back(crop(grid).index({crop(grid_mask)}));
    }
    first += parts;
  }
  return at::cat(packed);
}

/// Where hired's selection starts: CLS attention rows made by hired::cls_attention (ATen), or
/// the q/k themselves, scored by qk_scores' arithmetic (on CUDA inside select_kernel).
enum class Scoring { attention_rows, query_keys };

/// hired's selection of the same batch: CLS scores from q/k (no N x N map), budgets, top-k,
/// gather; newline policy none, to produce what reference_selection produces.
inline at::Tensor hired_selection(const SelectionInputs& in, const hired::TokenDropper& dropper,
                                  Scoring scoring = Scoring::attention_rows) {
  if (scoring == Scoring::query_keys) {
    const hired::TokenSelection selection =
        dropper.select(hired::QueryKeys{in.q_init, in.k_init, in.heads},
                       hired::QueryKeys{in.q_final, in.k_final, in.heads}, in.batch);
    return dropper.gather(selection, in.features).features;
  }
  const at::Tensor init = hired::cls_attention(in.q_init, in.k_init, in.heads);
  const at::Tensor fin = hired::cls_attention(in.q_final, in.k_final, in.heads);
  const hired::TokenSelection selection = dropper.select(init, fin, in.batch);
  return dropper.gather(selection, in.features).features;
}

/// Whether hired's selection packs exactly what the published formulation packs, from attention
/// rows and from q/k (reference mode, newline policy none): the benchmarks check it before
/// timing, so that they compare like for like.
inline bool matches_reference(const SelectionInputs& in, double rate, double alpha) {
  hired::DropConfig config;
  config.mode = hired::Mode::reference;
  config.budget = hired::Budget::rate(rate);
  config.alpha = alpha;
  config.newline = hired::NewlinePolicy::none;
  const hired::TokenDropper dropper(config);
  const at::Tensor expected = reference_selection(in, rate, alpha);
  for (const Scoring scoring : {Scoring::attention_rows, Scoring::query_keys})
    if (!at::equal(hired_selection(in, dropper, scoring), expected)) return false;
  return true;
}

}  // namespace hired_bench
