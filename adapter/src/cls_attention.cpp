// hired::cls_attention and hired::qk_attention: the CLS query's attention rows of one ViT layer,
// with ATen or by hired's own arithmetic.
#include "hired/torch/token_dropper.hpp"

#include "host_path.hpp"
#include "tensor_args.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace hired {

at::Tensor cls_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads) {
  detail::check_query_keys({q, k, heads}, "");
  const std::int64_t partitions = q.size(0), dim = q.size(2) / heads;
  // One query row per head, as one GEMM over k as it is: k [P, N+1, H*d] times a block-diagonal
  // [P, H*d, H] holding q_CLS of head h in rows h*d..h*d+d-1 of column h. A batched
  // [1, d] x [d, N+1] matmul per (partition, head) copies k per head and ran ~10x slower on CPU;
  // an elementwise product materialises a k-sized temporary.
  const at::Tensor q_cls = q.select(1, 0).to(at::kFloat).reshape({partitions, heads, dim});
  at::Tensor block_diagonal = at::zeros({partitions, heads, dim, heads}, q_cls.options());
  block_diagonal.diagonal(0, 1, 3).copy_(q_cls.transpose(1, 2));  // [P, d, H] view
  const at::Tensor logits =
      at::bmm(k.to(at::kFloat).contiguous(), block_diagonal.view({partitions, heads * dim, heads}))
          .transpose(1, 2) /
      std::sqrt(static_cast<double>(dim));
  return at::softmax(logits, -1);
}

at::Tensor qk_attention(const at::Tensor& q, const at::Tensor& k, std::int64_t heads) {
  detail::check_query_keys({q, k, heads}, "");
  return detail::host_qk_attention({q, k, heads}).to(q.device());
}

}  // namespace hired
