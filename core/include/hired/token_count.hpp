// What geometry alone decides about one image's part of a selection, before any score exists:
// the budget asked for, the tokens exact mode may keep, and (exact mode, newline policy none or
// every_row) how many tokens are kept and how many rows the image packs into. A serving engine
// that fixes each image's placeholder count while preprocessing needs exactly this
// (docs/DESIGN.md, section 4); the kernels size their outputs from it.
#pragma once

#include "hired/budget_formula.hpp"
#include "hired/config.hpp"
#include "hired/error.hpp"
#include "hired/geometry.hpp"
#include "hired/layout.hpp"

#include <cstdint>

namespace hired {

/// The budget T asked for an image of P partitions of N tokens: exact mode's rate of P * N or
/// token count, or reference mode's formula (which the published code truncates).
inline std::int64_t requested_budget(const ImageLayout& image, std::int64_t tokens,
                                     const DropConfig& config) {
  if (config.mode == Mode::reference)
    return reference_formula::split(image.partitions, tokens, config.budget.rate_value(),
                                    config.alpha)
        .total;
  return config.budget.is_rate()
             ? exact_formula::total(image.partitions, tokens, config.budget.rate_value())
             : config.budget.tokens_value();
}

/// Where unpad leaves an image's tile grid: its token box (empty for P = 1).
inline TokenBox unpadded_box(const ImageLayout& image, const VisionGrid& vision) {
  if (image.partitions == 1) return {};
  check(image.image_size.has_value(), "image_sizes: needed to unpad the tile grid of an image with tiles");
  return tile_token_box(*image.image_size, image.grid, vision);
}

/// The packed rows and kept tokens of one image in exact mode.
struct ImageCount {
  std::int64_t requested = 0;  // T
  std::int64_t eligible = 0;   // the full image's N plus the tile tokens unpad keeps
  std::int64_t kept = 0;       // min(T, eligible): exact mode meets its budget exactly
  std::int64_t rows = 0;       // kept + image_newline rows: what the image becomes in the LLM
};

/// The counts of exact mode with newline policy none or every_row, which follow from the
/// layout; hired::Error naming the mode or the policy otherwise (the count then depends on the
/// scores). every_row gives every row of the unpadded tile grid an image_newline (one after the
/// full image when P = 1), as stock LLaVA-Next does.
inline ImageCount exact_image_count(const ImageLayout& image, const VisionGrid& vision,
                                    const DropConfig& config) {
  config.validate();
  check(config.mode == Mode::exact,
        "mode: reference mode's kept count depends on the scores (padding tokens it keeps "
        "vanish at unpad); only exact mode's follows from the image size");
  check(config.newline != NewlinePolicy::kept_rows,
        "newline: kept_rows places newline rows by the scores; only none and every_row give a "
        "count from the image size");
  check_layout(image, 0);
  const TokenBox box = unpadded_box(image, vision);
  const std::int64_t tokens = vision.tokens();
  const std::int64_t box_rows = image.partitions == 1 ? 1 : box.rows();
  ImageCount out;
  out.requested = requested_budget(image, tokens, config);
  out.eligible = tokens + box.rows() * box.cols();
  out.kept = formula::min64(out.requested, out.eligible);
  out.rows = out.kept + (config.newline == NewlinePolicy::every_row ? box_rows : 0);
  return out;
}

}  // namespace hired
