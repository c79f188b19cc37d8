// CLS-row scores from a layer's query and key projections, by one fully specified arithmetic
// that the host (this header), the CUDA kernels (kernels/cls_scores.cuh) and the emulator all
// perform, so the CPU and CUDA paths keep the same tokens bit for bit.
//
// For partition row p and head h (channels h*d .. h*d+d-1 of the width H*d), with keys
// t = 0..N (0 is the CLS key), everything in float:
//   dot_t   = fma chain over the channels in order: ((0 + q_0 k_t0) + q_1 k_t1) + ..., one
//             fmaf per channel
//   l_t     = dot_t * scale                       (scale: qk_scale(d) = 1 / sqrt(d), rounded)
//   m       = max over t of l_t                   (exact in any order)
//   e_t     = exp_nonpositive(l_t - m)            (below: an explicit polynomial, not libm)
//   Z       = lane-strided sum: partial[i] = ((0 + e_i) + e_{i+32}) + ... for i = 0..31, then
//             five butterfly steps partial[i] = partial[i] + partial[i ^ s], s = 16, 8, 4, 2, 1;
//             Z = partial[0] (a warp of 32 lanes does exactly this on the device)
//   a_t     = e_t / Z
//   s[p][j] = ((0 + a^(h=0)_{1+j}) + a^(h=1)_{1+j}) + ...   (heads ascending, as sum_heads)
// Every operation is a single IEEE round-to-nearest operation; none may be fused with
// another (nvcc would contract l_t - m into an FMA): on the device they are __f*_rn
// intrinsics, on the host plain operations behind an optimisation barrier (hired/qk_math.hpp).
// A non-finite logit (NaN or Inf in q or k, or an overflowing product) makes the row invalid.
//
// The result is the softmax of the published method to within a few float roundings
// (tests/core/qk_scores_test.cpp measures it against a float64 softmax); what makes it
// useful is that it is the same everywhere.
#pragma once

#include "hired/error.hpp"
#include "hired/layout.hpp"
#include "hired/qk_math.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace hired {


/// The logit scale every backend uses: 1 / sqrt(head_dim), each step rounded to float.
inline float qk_scale(std::int64_t head_dim) {
  check(head_dim > 0, "head_dim: {} must be positive", head_dim);
  return qk_math::scale(head_dim);
}

/// One layer's CLS queries and keys in float, strided: channel c (= h * head_dim + i) of row
/// p's CLS query at q[p * q_row_stride + c], of its key t (0..tokens) at
/// k[p * k_row_stride + t * k_token_stride + c].
struct QueryKeyView {
  const float* q = nullptr;
  std::int64_t q_row_stride = 0;
  const float* k = nullptr;
  std::int64_t k_row_stride = 0;
  std::int64_t k_token_stride = 0;
  std::int64_t rows = 0;
  std::int64_t heads = 0;
  std::int64_t head_dim = 0;
  std::int64_t tokens = 0;  // N; N + 1 keys
  float scale = 0.0f;
};

namespace detail {

/// dot[h * keys + t] = the fma chain of key t with head h's query over its channels (in order),
/// for every head and key of one row. Eight keys at a time, all heads: their chains run side by
/// side and the eight key rows stay in cache; each chain keeps its channel order, so the
/// result is the same as one key at a time.
[[gnu::always_inline]] inline void qk_dots_body(const float* q, const float* k,
                                                std::int64_t k_token_stride, std::int64_t keys,
                                                std::int64_t heads, std::int64_t head_dim,
                                                float* dot) {
  constexpr std::int64_t kBlock = 8;
  std::int64_t t = 0;
  for (; t + kBlock <= keys; t += kBlock)
    for (std::int64_t h = 0; h < heads; ++h) {
      const float* qh = q + h * head_dim;
      const float* kh = k + t * k_token_stride + h * head_dim;
      float acc[kBlock] = {};
      for (std::int64_t c = 0; c < head_dim; ++c)
        for (std::int64_t i = 0; i < kBlock; ++i)
          acc[i] = qk_math::fma(qh[c], kh[i * k_token_stride + c], acc[i]);
      for (std::int64_t i = 0; i < kBlock; ++i) dot[h * keys + t + i] = acc[i];
    }
  for (; t < keys; ++t)
    for (std::int64_t h = 0; h < heads; ++h) {
      const float* qh = q + h * head_dim;
      const float* kh = k + t * k_token_stride + h * head_dim;
      float acc = 0.0f;
      for (std::int64_t c = 0; c < head_dim; ++c) acc = qk_math::fma(qh[c], kh[c], acc);
      dot[h * keys + t] = acc;
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// With the FMA instruction set the fmaf calls become single instructions; the results are the
// same either way (fmaf is correctly rounded), only the speed differs.
[[gnu::target("fma")]] inline void qk_dots_fma(const float* q, const float* k,
                                               std::int64_t k_token_stride, std::int64_t keys,
                                               std::int64_t heads, std::int64_t head_dim,
                                               float* dot) {
  qk_dots_body(q, k, k_token_stride, keys, heads, head_dim, dot);
}
#endif

inline void qk_dots(const float* q, const float* k, std::int64_t k_token_stride,
                    std::int64_t keys, std::int64_t heads, std::int64_t head_dim, float* dot) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool has_fma = __builtin_cpu_supports("fma");
  if (has_fma) return qk_dots_fma(q, k, k_token_stride, keys, heads, head_dim, dot);
#endif
  qk_dots_body(q, k, k_token_stride, keys, heads, head_dim, dot);
}

}  // namespace detail

/// Where a row's first non-finite logit is.
struct QkFault {
  std::int64_t head = -1, key = -1;
};

/// Floats of scratch qk_row_scores needs: one logit per head and key.
inline std::int64_t qk_scratch_floats(const QueryKeyView& v) { return v.heads * (v.tokens + 1); }

namespace detail {

/// One head's dot products e[0, keys) (qk_dots) become its softmax terms in place: scaled, the
/// maximum subtracted, exponentiated (see the file comment). Returns Z, the lane-strided sum of
/// the terms (>= 1: the maximum's term is exactly 1), or -1 at the first non-finite logit, whose
/// key goes to *bad_key.
inline float qk_head_terms(float* e, std::int64_t keys, float scale, std::int64_t* bad_key) {
  using namespace qk_math;
  float max = -3.40282347e38f;
  for (std::int64_t t = 0; t < keys; ++t) {
    e[t] = mul(e[t], scale);
    if (!finite(e[t])) {
      *bad_key = t;
      return -1.0f;
    }
    max = e[t] > max ? e[t] : max;
  }
  float partial[kLanes] = {};
  for (std::int64_t t = 0; t < keys; ++t) {
    e[t] = exp_nonpositive(add(e[t], -max));
    partial[t % kLanes] = add(partial[t % kLanes], e[t]);
  }
  for (int step = kLanes / 2; step > 0; step /= 2) {
    float next[kLanes];
    for (int i = 0; i < kLanes; ++i) next[i] = add(partial[i], partial[i ^ step]);
    for (int i = 0; i < kLanes; ++i) partial[i] = next[i];
  }
  return partial[0];
}

}  // namespace detail

/// The scores of row p (see the file comment) into out[0, N), with qk_scratch_floats(v) floats
/// of scratch. Returns false (out is then unspecified) at the first non-finite logit (heads,
/// then keys, in order), stored in *fault. No checks of `v`: qk_scores makes them.
inline bool qk_row_scores(const QueryKeyView& v, std::int64_t p, float* out, float* scratch,
                          QkFault* fault = nullptr) {
  using namespace qk_math;
  const std::int64_t keys = v.tokens + 1;
  detail::qk_dots(v.q + p * v.q_row_stride, v.k + p * v.k_row_stride, v.k_token_stride, keys,
                  v.heads, v.head_dim, scratch);
  for (std::int64_t j = 0; j < v.tokens; ++j) out[j] = 0.0f;
  for (std::int64_t h = 0; h < v.heads; ++h) {
    float* const e = scratch + h * keys;  // the head's logits, then its softmax terms
    std::int64_t bad_key = -1;
    const float total = detail::qk_head_terms(e, keys, v.scale, &bad_key);
    if (total < 0.0f) {
      if (fault != nullptr) *fault = {h, bad_key};
      return false;
    }
    for (std::int64_t j = 0; j < v.tokens; ++j) out[j] = add(out[j], div(e[1 + j], total));
  }
  return true;
}

/// Row p's attention rows by the same arithmetic into out[h * (N + 1) + t] (heads, then keys;
/// t = 0 is the CLS key): the terms qk_row_scores adds, so sum_heads of them is its scores bit
/// for bit. A host that holds the heads on several ranks gathers these rows in head order and
/// selects from them as from qk_row_scores. Returns false at the first non-finite logit, as
/// qk_row_scores. No checks of `v`: qk_attention makes them.
inline bool qk_row_attention(const QueryKeyView& v, std::int64_t p, float* out,
                             QkFault* fault = nullptr) {
  using namespace qk_math;
  const std::int64_t keys = v.tokens + 1;
  detail::qk_dots(v.q + p * v.q_row_stride, v.k + p * v.k_row_stride, v.k_token_stride, keys,
                  v.heads, v.head_dim, out);
  for (std::int64_t h = 0; h < v.heads; ++h) {
    float* const a = out + h * keys;
    std::int64_t bad_key = -1;
    const float total = detail::qk_head_terms(a, keys, v.scale, &bad_key);
    if (total < 0.0f) {
      if (fault != nullptr) *fault = {h, bad_key};
      return false;
    }
    for (std::int64_t t = 0; t < keys; ++t) a[t] = div(a[t], total);
  }
  return true;
}

/// Runs body(begin, end) over rows [0, count) in order on this thread: qk_scores' default.
/// A caller may pass a thread pool's parallel-for instead; each row's arithmetic is the same.
struct RowsInOrder {
  template <class Body>
  void operator()(std::int64_t count, Body&& body) const {
    body(std::int64_t{0}, count);
  }
};

namespace detail {

/// `width` floats per listed row (all rows when `rows` is empty), row_fn(p, out, scratch,
/// fault) computing one, the rows handed to `run`: qk_scores' and qk_attention's checks and
/// error reporting.
template <class Run, class RowFn>
std::vector<float> qk_rows(const QueryKeyView& v, const char* what,
                           std::span<const std::int64_t> rows, Run run, std::int64_t width,
                           RowFn row_fn) {
  check(v.q != nullptr && v.k != nullptr, "{}: null q or k", what);
  check(v.rows > 0 && v.heads > 0 && v.head_dim > 0 && v.tokens > 0,
        "{}: rows {}, heads {}, head_dim {} and N {} must be positive", what, v.rows, v.heads,
        v.head_dim, v.tokens);
  check(std::isfinite(v.scale) && v.scale > 0.0f, "{}: scale {} must be finite and positive",
        what, v.scale);
  const std::int64_t count = rows.empty() ? v.rows : static_cast<std::int64_t>(rows.size());
  const auto row_of = [&](std::int64_t i) {
    return rows.empty() ? i : rows[static_cast<std::size_t>(i)];
  };
  std::vector<float> out(static_cast<std::size_t>(count * width));
  std::vector<QkFault> faults(static_cast<std::size_t>(count));  // key -1: computed, no fault
  run(count, [&](std::int64_t begin, std::int64_t end) {
    std::vector<float> scratch(static_cast<std::size_t>(qk_scratch_floats(v)));
    for (std::int64_t i = begin; i < end; ++i) {
      const std::int64_t p = row_of(i);
      if (p >= 0 && p < v.rows) row_fn(p, out.data() + i * width, scratch.data(), &faults[i]);
    }
  });
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t p = row_of(i);
    check(p >= 0 && p < v.rows, "{}: row {} outside [0, {})", what, p, v.rows);
    const QkFault& fault = faults[static_cast<std::size_t>(i)];
    check(fault.key < 0,
          "{}: the logit of row {}, head {}, key {} is not finite (NaN or Inf in q or k, or "
          "q . k overflows)",
          what, p, fault.head, fault.key);
  }
  return out;
}

}  // namespace detail

/// Scores [rows.size(), N] of the listed rows (all rows when `rows` is empty), as sum_heads
/// returns them, the rows handed to `run(count, body)` (see RowsInOrder). Throws hired::Error
/// naming `what` for a bad view, or for the first listed row that is out of range or has a
/// non-finite logit (its head and key), whichever way the rows were run.
template <class Run = RowsInOrder>
std::vector<float> qk_scores(const QueryKeyView& v, const char* what,
                             std::span<const std::int64_t> rows = {}, Run run = {}) {
  return detail::qk_rows(v, what, rows, run, v.tokens,
                         [&v](std::int64_t p, float* out, float* scratch, QkFault* fault) {
                           return qk_row_scores(v, p, out, scratch, fault);
                         });
}

/// Attention rows [rows, H, N + 1] of every row (qk_row_attention), the rows handed to `run`;
/// the checks and errors of qk_scores.
template <class Run = RowsInOrder>
std::vector<float> qk_attention(const QueryKeyView& v, const char* what, Run run = {}) {
  return detail::qk_rows(v, what, {}, run, v.heads * (v.tokens + 1),
                         [&v](std::int64_t p, float* out, float*, QkFault* fault) {
                           return qk_row_attention(v, p, out, fault);
                         });
}

/// The init-layer scores the budgets need, in select_tokens' [sum P, N] layout: each image's
/// full-image row scored (qk_scores, rows run by `run`), every other row 0 (never read).
template <class Run = RowsInOrder>
std::vector<float> qk_init_scores(const QueryKeyView& v, std::span<const ImageLayout> images,
                                  const char* what, Run run = {}) {
  check(total_partitions(images) == v.rows, "{}: {} rows, but the images have {} partitions",
        what, v.rows, total_partitions(images));
  const std::vector<std::int64_t> rows = full_image_rows(images);
  const std::vector<float> full = qk_scores(v, what, rows, run);
  std::vector<float> out(static_cast<std::size_t>(v.rows * v.tokens), 0.0f);
  for (std::size_t i = 0; i < rows.size(); ++i)
    std::copy_n(full.begin() + static_cast<std::ptrdiff_t>(i * v.tokens), v.tokens,
                out.begin() + rows[i] * v.tokens);
  return out;
}

}  // namespace hired
