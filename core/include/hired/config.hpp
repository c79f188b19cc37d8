// What a user chooses: mode, budget, full-image share and the newline policy.
#pragma once

#include "hired/error.hpp"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string_view>

namespace hired {

/// exact: the default (docs/DESIGN.md, section 4). reference: bit-compatible with the published
/// code (section 3).
enum class Mode { exact, reference };

/// Where `image_newline` rows go in the packed output: nowhere, after every row of the
/// unpadded tile grid (stock LLaVA-Next), or only after rows that kept at least one token.
enum class NewlinePolicy { none, every_row, kept_rows };

/// A per-image token budget: a rate of the image's P*N tokens, or an absolute count.
class Budget {
 public:
  static Budget rate(double r) {
    check(std::isfinite(r) && r > 0.0 && r <= 1.0, "budget_rate: {} is outside (0, 1]", r);
    return Budget(r, -1);
  }
  static Budget tokens(std::int64_t t) {
    check(t >= 0, "budget_tokens: {} is negative", t);
    return Budget(0.0, t);
  }
  bool is_rate() const { return tokens_ < 0; }
  double rate_value() const { return rate_; }
  std::int64_t tokens_value() const { return tokens_; }

 private:
  Budget(double r, std::int64_t t) : rate_(r), tokens_(t) {}
  double rate_;
  std::int64_t tokens_;
};

struct DropConfig {
  Mode mode = Mode::exact;
  Budget budget = Budget::rate(0.2);
  double alpha = 0.5;  // share of the budget that goes to the full image
  NewlinePolicy newline = NewlinePolicy::every_row;

  void validate() const {
    check(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0, "alpha: {} is outside [0, 1]",
          alpha);
    check(mode == Mode::exact || budget.is_rate(),
          "budget_tokens: reference mode reproduces the published code, which takes a rate; "
          "use budget_rate or exact mode");
  }
};

inline std::string_view to_string(Mode m) { return m == Mode::exact ? "exact" : "reference"; }

inline Mode parse_mode(std::string_view s) {
  if (s == "exact") return Mode::exact;
  if (s == "reference") return Mode::reference;
  fail("mode: '{}' is not one of exact, reference", s);
}

inline std::string_view to_string(NewlinePolicy p) {
  switch (p) {
    case NewlinePolicy::none: return "none";
    case NewlinePolicy::every_row: return "every_row";
    case NewlinePolicy::kept_rows: return "kept_rows";
  }
  return "?";
}

inline NewlinePolicy parse_newline_policy(std::string_view s) {
  if (s == "none") return NewlinePolicy::none;
  if (s == "every_row") return NewlinePolicy::every_row;
  if (s == "kept_rows") return NewlinePolicy::kept_rows;
  fail("newline: '{}' is not one of none, every_row, kept_rows", s);
}

}  // namespace hired
