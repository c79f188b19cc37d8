// The LLaVA-Next splice: the path from the vision tower's feature layer to the language model's
// image rows, with HiRED in it. Dropping happens before the projector, so the projector (and
// the LLM) see only the kept tokens. Link hired::hired.
#pragma once

#include "hired/torch/token_dropper.hpp"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace hired {

/// The multimodal projector, [M, Dv] -> [M, Dt] row by row: any callable taking and returning
/// an at::Tensor, referred to (not copied) for the duration of the call it is passed to.
class ProjectorRef {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ProjectorRef> &&
             std::is_invocable_r_v<at::Tensor, F&, const at::Tensor&>)
  ProjectorRef(F&& f)  // NOLINT: implicit, like a function reference
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* o, const at::Tensor& rows) -> at::Tensor {
          return (*static_cast<std::remove_reference_t<F>*>(o))(rows);
        }) {}

  at::Tensor operator()(const at::Tensor& rows) const { return call_(object_, rows); }

 private:
  void* object_;
  at::Tensor (*call_)(void*, const at::Tensor&);
};

/// Image rows for the language model, in LLaVA-Next's packing order.
struct LlavaNextImageRows {
  at::Tensor features;                      // [rows, Dt]: projected tokens + image_newline rows
  at::Tensor lengths;                       // [B]: rows of each image, newline rows included
  std::vector<std::int64_t> visual_tokens;  // [B]: kept visual tokens per image (no newline)
  std::optional<TokenSelection> selection;  // HiRED's selection; empty for the stock path
};

/// HiRED between the vision tower and the projector. `features` [sum P, N, Dv] is the feature
/// layer's hidden state without CLS; `init_cls_attn`/`final_cls_attn` [sum P, H, N + 1] the
/// CLS rows of l_init and l_final; `image_newline` [Dt]. Only the kept tokens are projected;
/// newline rows follow the dropper's policy. At rate 1.0 (exact mode, every_row) the rows
/// equal stock_llava_next's to the bit whenever the projector's result for a row does not
/// depend on how many rows it is given (true of CPU GEMMs for more than a few rows).
LlavaNextImageRows hired_llava_next(const TokenDropper& dropper, const at::Tensor& features,
                                    const at::Tensor& init_cls_attn,
                                    const at::Tensor& final_cls_attn, const ImageBatch& images,
                                    ProjectorRef project, const at::Tensor& image_newline);

/// The same from the CLS queries and keys of l_init and l_final (TokenDropper::select's q/k
/// overload: the same tokens on CPU and CUDA, bit for bit).
LlavaNextImageRows hired_llava_next(const TokenDropper& dropper, const at::Tensor& features,
                                    const QueryKeys& init, const QueryKeys& final,
                                    const ImageBatch& images, ProjectorRef project,
                                    const at::Tensor& image_newline);

/// Stock LLaVA-Next, for comparison and for runs without dropping: every token is projected,
/// then the tile grid is unpadded and an image_newline row follows every row
/// (transformers' `pack_image_features`).
LlavaNextImageRows stock_llava_next(const at::Tensor& features, const ImageBatch& images,
                                    ProjectorRef project, const at::Tensor& image_newline);

}  // namespace hired
