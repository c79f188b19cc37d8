// hired::TokenDropper — the LibTorch adapter: validates tensors, runs the selection, and
// gathers the kept features in LLaVA-Next's packing order. Link hired::hired.
#pragma once

#include "hired/config.hpp"
#include "hired/geometry.hpp"
#include "hired/selection.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace hired {

/// How the images of a batch are partitioned. Integer tensors on any device.
struct ImageBatch {
  at::Tensor num_partitions;              // [B]: P of each image (1 + tiles)
  std::optional<at::Tensor> grid_shapes;  // [B, 2]: tile grid (rows, cols)
  std::optional<at::Tensor> image_sizes;  // [B, 2]: original (height, width)
  std::vector<Size2> grid_pinpoints{llava_v16_grid_pinpoints.begin(),
                                    llava_v16_grid_pinpoints.end()};
  std::int64_t tile_px = 336;
};

/// One ViT layer's CLS queries and keys: the query and key projections q, k [sum P, N + 1, H * d]
/// (before the 1/sqrt(d) scale; only token 0 of q is read), any floating dtype, one device.
/// Views with contiguous channels, such as the chunks of a fused qkv projection, are read in
/// place by the CUDA kernels; other layouts are copied.
struct QueryKeys {
  at::Tensor q;
  at::Tensor k;
  std::int64_t heads = 0;  // H; the head dim d = width / H
};

/// Each image's layout (partitions, tile grid, size), validated; errors name the tensor.
std::vector<ImageLayout> image_layouts(const ImageBatch& images);

class HostSelection;
namespace detail {
struct HostSelectionState;  // host_selection.hpp
struct DeviceSelection;     // what a CUDA selection keeps for gather (device_selection.hpp)
class PlanCache;            // per-layout device parameters of the CUDA path (plan_cache.hpp)
HostSelection lazy_host_selection_of(std::shared_ptr<HostSelectionState> state);
}  // namespace detail

/// The host copy of a selection. Ready at once for CPU inputs; for CUDA inputs it is filled on
/// first use (a device-to-host copy and a synchronisation with the selection's stream, which
/// also raises any error the kernels flagged), so a selection nobody reads on the host costs
/// no synchronisation. Converts to `const Selection&`; copies share one state.
class HostSelection {
 public:
  HostSelection();
  HostSelection(Selection ready);  // NOLINT: implicit, a ready copy

  const Selection& get() const;
  operator const Selection&() const { return get(); }  // NOLINT: implicit by design
  bool ready() const;

 private:
  friend HostSelection detail::lazy_host_selection_of(std::shared_ptr<detail::HostSelectionState>);
  explicit HostSelection(std::shared_ptr<detail::HostSelectionState> state);
  std::shared_ptr<detail::HostSelectionState> state_;
};

/// The selection as int64 tensors on the attention's device (CSR), plus its host copy.
///
/// CUDA inputs (a library built with CUDA): two kernel launches on the current stream. In
/// exact mode every size follows from geometry and select() does not synchronise; in
/// reference mode it synchronises once to learn K. Errors the kernels detect (invalid
/// attention values) are raised by check(), by `host` and by gather()'s synchronising paths.
struct TokenSelection {
  at::Tensor budgets;            // [sum P]: tokens kept per partition
  at::Tensor kept;               // [K]: patch indices 0..N-1, ascending within a partition
  at::Tensor kept_offsets;       // [sum P + 1]
  at::Tensor partition_offsets;  // [B + 1]
  at::Tensor requested;          // [B]: the budget T asked for each image
  HostSelection host;
  std::shared_ptr<const detail::DeviceSelection> device;  // CUDA path only

  /// Raises the error a CUDA selection's kernels flagged (synchronises); nothing on CPU.
  void check() const;
};

/// Kept features in packing order.
struct PackedFeatures {
  at::Tensor features;     // [rows, D], the features' dtype and device
  at::Tensor lengths;      // [B]: rows of each image, newline rows included
  at::Tensor source_rows;  // [rows]: partition * N + token, or -1 for an image_newline row
  at::Tensor status;       // CUDA path: the kernels' status word (int32 [1]); else undefined

  /// Raises the error the CUDA kernels flagged (synchronises); nothing on CPU.
  void check() const;
};

/// A selection from its CSR tensors (TokenSelection's `kept` and `kept_offsets`, integers on
/// any device) for a batch laid out as `images`, N = `tokens` per partition. Validated (offsets
/// monotone and complete, indices in [0, N) ascending per partition), so a selection that went
/// through Python or a file packs safely; in exact mode no kept token may lie in padding. Its
/// host copy is ready; `budgets` and `requested` hold the kept counts.
TokenSelection selection_from_csr(const at::Tensor& kept, const at::Tensor& kept_offsets,
                                  const ImageBatch& images, std::int64_t tokens,
                                  Mode mode = Mode::exact, std::string_view tokens_from = "tokens");

class TokenDropper {
 public:
  explicit TokenDropper(DropConfig config = {});
  const DropConfig& config() const { return config_; }

  /// `init_cls_attn`, `final_cls_attn`: [sum P, H, N + 1] CLS-query attention rows of layers
  /// l_init and l_final (key 0 is CLS -> CLS), any floating dtype, same device.
  TokenSelection select(const at::Tensor& init_cls_attn, const at::Tensor& final_cls_attn,
                        const ImageBatch& images) const;

  /// The same from the CLS queries and keys of l_init and l_final, scored by
  /// hired/qk_scores.hpp's arithmetic on either device (CUDA: inside the same two launches),
  /// so the CPU and CUDA paths keep the same tokens bit for bit. Only each image's full-image
  /// row of `init` is read: the budgets need no other. CUDA supports d <= 256.
  TokenSelection select(const QueryKeys& init, const QueryKeys& final,
                        const ImageBatch& images) const;

  /// `features`: [sum P, N, D], e.g. the vision tower's feature layer without CLS.
  /// `image_newline` ([D]) is required unless the newline policy is none.
  /// A CUDA selection with CUDA features of dtype f32/f16/bf16 packs with one kernel launch
  /// on the current stream; it synchronises once (to learn the row count) unless the sizes
  /// follow from geometry (exact mode, newline policy none or every_row).
  PackedFeatures gather(const TokenSelection& selection, const at::Tensor& features,
                        const std::optional<at::Tensor>& image_newline = std::nullopt) const;

  /// Rows already in packing order without newline rows, [K, D] (what gather() gives with
  /// newline policy none, then e.g. the projector), laid out with `image_newline` ([D]) rows by
  /// this dropper's policy: pack_rows(gather() with none) equals gather() with the policy. The
  /// host plan places the newline rows (a CUDA selection synchronises once).
  PackedFeatures pack_rows(const TokenSelection& selection, const at::Tensor& rows,
                           const std::optional<at::Tensor>& image_newline = std::nullopt) const;

 private:
  DropConfig config_;
  // CUDA path: the device copy of each batch layout's kernel parameters, uploaded once, so a
  // repeated layout (a warm-up before CUDA graph capture) needs no host-to-device copy.
  std::shared_ptr<detail::PlanCache> cache_;
};

/// The CLS query's attention row of one layer from its query and key projections
/// ([sum P, N + 1, H * d], before the 1/sqrt(d) scale): softmax(q_CLS . k_j / sqrt(d)) over
/// all N + 1 keys, per head, in float32 -> [sum P, H, N + 1]. One pass over k: the N x N
/// attention map is never formed. ATen's arithmetic (a GEMM and at::softmax): for scores that
/// agree between devices bit for bit, pass the QueryKeys to TokenDropper::select instead.
at::Tensor cls_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads);

/// The same rows by hired/qk_scores.hpp's arithmetic (qk_row_attention), on the inputs'
/// device: the terms TokenDropper::select(QueryKeys...) adds, so select() on these rows keeps
/// exactly its tokens. For hosts that hold the heads on several ranks (tensor parallelism):
/// each rank computes its heads' rows, the rows are gathered in head order, and every rank
/// selects the same tokens as one rank holding every head. Computed on the host (CUDA inputs
/// are copied there once).
at::Tensor qk_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads);

}  // namespace hired
