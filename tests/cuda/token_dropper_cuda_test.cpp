// hired::TokenDropper on CUDA tensors (hired's kernels, two launches) against the same calls
// on CPU tensors (the core): kept sets, budgets, CSR offsets, requested budgets, packed
// features to the bit, source rows and lengths — every mode, newline policy, attention and
// feature dtype, non-contiguous inputs, the lazily filled host copy, errors, and a CUDA graph
// capture of select + gather; from attention rows and from CLS queries and keys (scored in the
// kernel, bit for bit as on the host). Skips (GTEST_SKIP) without a CUDA device; label `gpu`,
// run on a GPU machine by scripts/gpu_check.sh.
#include "hired/torch/token_dropper.hpp"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#if HIRED_TEST_CUDA_DISPATCH
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace {

using hired::DropConfig;
using hired::ImageBatch;
using hired::Mode;
using hired::NewlinePolicy;
using hired::TokenDropper;

class TokenDropperCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (or a CPU-only LibTorch)";
  }
};

/// Four images: 600x600 (2x2 tiles), 480x640 and 1000x300 (padding rows or columns, grids
/// from LLaVA-v1.6's pinpoints) and a P = 1 image.
ImageBatch heterogeneous_batch() {
  const std::vector<hired::Size2> sizes{{600, 600}, {480, 640}, {1000, 300}};
  std::vector<std::int64_t> partitions, flat;
  for (const hired::Size2& size : sizes) {
    partitions.push_back(hired::anyres_grid_shape(size, hired::llava_v16_grid_pinpoints, 336).tiles() + 1);
    flat.insert(flat.end(), {size.height, size.width});
  }
  partitions.push_back(1);
  flat.insert(flat.end(), {336, 336});
  ImageBatch b;
  b.num_partitions = at::tensor(partitions);
  b.image_sizes = at::tensor(flat).reshape({4, 2});
  return b;
}
const std::int64_t kPartitions = heterogeneous_batch().num_partitions.sum().item<std::int64_t>();
constexpr std::int64_t kHeads = 4, kTokens = 576, kDim = 40;

/// Attention rows with exact ties: a few levels per row, so the top-k cut has ties.
at::Tensor tied_attention(std::int64_t seed) {
  at::manual_seed(seed);
  return at::randint(0, 4, {kPartitions, kHeads, kTokens + 1}, at::kFloat).mul(0.125);
}

DropConfig config_for(Mode mode, NewlinePolicy newline, double rate = 0.2) {
  DropConfig c;
  c.mode = mode;
  c.budget = hired::Budget::rate(rate);
  c.newline = newline;
  return c;
}

void expect_same_selection(const hired::TokenSelection& gpu, const hired::TokenSelection& cpu,
                           const std::string& what) {
  EXPECT_TRUE(at::equal(gpu.budgets.cpu(), cpu.budgets)) << what;
  EXPECT_TRUE(at::equal(gpu.kept.cpu(), cpu.kept)) << what;
  EXPECT_TRUE(at::equal(gpu.kept_offsets.cpu(), cpu.kept_offsets)) << what;
  EXPECT_TRUE(at::equal(gpu.partition_offsets.cpu(), cpu.partition_offsets)) << what;
  EXPECT_TRUE(at::equal(gpu.requested.cpu(), cpu.requested)) << what;
  const hired::Selection& g = gpu.host;
  const hired::Selection& c = cpu.host;
  EXPECT_EQ(g.kept, c.kept) << what;
  EXPECT_EQ(g.kept_offsets, c.kept_offsets) << what;
  EXPECT_EQ(g.requested, c.requested) << what;
}

void expect_same_packing(const hired::PackedFeatures& gpu, const hired::PackedFeatures& cpu,
                         const std::string& what) {
  gpu.check();
  ASSERT_EQ(gpu.features.sizes(), cpu.features.sizes()) << what;
  EXPECT_EQ(gpu.features.scalar_type(), cpu.features.scalar_type()) << what;
  // Raw bits: the kernel copies words, so even NaN payloads must survive.
  EXPECT_TRUE(at::equal(gpu.features.cpu().view(at::kByte), cpu.features.view(at::kByte))) << what;
  EXPECT_TRUE(at::equal(gpu.source_rows.cpu(), cpu.source_rows)) << what;
  EXPECT_TRUE(at::equal(gpu.lengths.cpu(), cpu.lengths)) << what;
}

TEST_F(TokenDropperCuda, EveryModePolicyAndDtypeMatchesTheCpuPath) {
  const ImageBatch images = heterogeneous_batch();
  const at::Tensor init = tied_attention(1), final_attention = tied_attention(2);
  const at::Tensor features = at::randn({kPartitions, kTokens, kDim}, at::kFloat);
  const at::Tensor newline = at::randn({kDim}, at::kFloat);
  for (const Mode mode : {Mode::exact, Mode::reference})
    for (const NewlinePolicy policy :
         {NewlinePolicy::none, NewlinePolicy::every_row, NewlinePolicy::kept_rows})
      for (const at::ScalarType attention : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble})
        for (const at::ScalarType feature : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
          const std::string what = std::string(hired::to_string(mode)) + " " +
                                   std::string(hired::to_string(policy)) + " " +
                                   c10::toString(attention) + " " + c10::toString(feature);
          const TokenDropper dropper(config_for(mode, policy));
          const at::Tensor a = init.to(attention), f = final_attention.to(attention);
          const auto cpu = dropper.select(a, f, images);
          const auto gpu = dropper.select(a.cuda(), f.cuda(), images);
          expect_same_selection(gpu, cpu, what);
          const at::Tensor x = features.to(feature), n = newline.to(feature);
          expect_same_packing(dropper.gather(gpu, x.cuda(), n.cuda()), dropper.gather(cpu, x, n),
                              what);
        }
}

TEST_F(TokenDropperCuda, RatesFromNothingToEverything) {
  const ImageBatch images = heterogeneous_batch();
  const at::Tensor init = tied_attention(3), final_attention = tied_attention(4);
  const at::Tensor features = at::randn({kPartitions, kTokens, kDim}, at::kHalf);
  const at::Tensor newline = at::randn({kDim}, at::kHalf);
  for (const double rate : {1e-4, 0.05, 0.2, 0.5, 0.999, 1.0})
    for (const Mode mode : {Mode::exact, Mode::reference}) {
      const TokenDropper dropper(config_for(mode, NewlinePolicy::kept_rows, rate));
      const auto cpu = dropper.select(init, final_attention, images);
      const auto gpu = dropper.select(init.cuda(), final_attention.cuda(), images);
      const std::string what = "rate " + std::to_string(rate);
      expect_same_selection(gpu, cpu, what);
      expect_same_packing(dropper.gather(gpu, features.cuda(), newline.cuda()),
                          dropper.gather(cpu, features, newline), what);
    }
}

TEST_F(TokenDropperCuda, NonContiguousInputsAreMadeContiguous) {
  const ImageBatch images = heterogeneous_batch();
  // Attention as a strided view (every other head of a wider tensor), features transposed.
  const at::Tensor wide = at::rand({kPartitions, 2 * kHeads, kTokens + 1}, at::kFloat);
  const at::Tensor init = wide.slice(1, 0, 2 * kHeads, 2), final_attention = wide.slice(1, 1, 2 * kHeads, 2);
  ASSERT_FALSE(init.is_contiguous());
  const at::Tensor features = at::randn({kPartitions, kDim, kTokens}, at::kBFloat16).transpose(1, 2);
  ASSERT_FALSE(features.is_contiguous());
  const at::Tensor newline = at::randn({2 * kDim}, at::kBFloat16).slice(0, 0, 2 * kDim, 2);
  const TokenDropper dropper(config_for(Mode::exact, NewlinePolicy::every_row));
  const auto cpu = dropper.select(init, final_attention, images);
  const auto gpu = dropper.select(init.cuda(), final_attention.cuda(), images);
  expect_same_selection(gpu, cpu, "strided");
  expect_same_packing(dropper.gather(gpu, features.cuda(), newline.cuda()),
                      dropper.gather(cpu, features, newline), "strided");
}

TEST_F(TokenDropperCuda, ExactModeStaysOnTheDeviceUntilTheHostCopyIsRead) {
#if !HIRED_TEST_CUDA_DISPATCH
  GTEST_SKIP() << "hired was built without its CUDA kernels: CUDA inputs go through the host";
#endif
  const TokenDropper dropper(config_for(Mode::exact, NewlinePolicy::every_row));
  const auto cpu = dropper.select(tied_attention(5), tied_attention(6), heterogeneous_batch());
  const auto gpu = dropper.select(tied_attention(5).cuda(), tied_attention(6).cuda(),
                                  heterogeneous_batch());
  EXPECT_FALSE(gpu.host.ready());  // nothing was read back
  EXPECT_EQ(gpu.kept.size(0), cpu.kept.size(0));  // sized from geometry: min(T, eligible)
  gpu.check();
  EXPECT_TRUE(gpu.host.ready());
}

// A NaN in a tile's init row (which only the validation reads): exact mode raises it lazily
// (check(), host), reference mode at its synchronisation; the message is the CPU path's.
TEST_F(TokenDropperCuda, InvalidAttentionIsRaised) {
  at::Tensor init = tied_attention(7);
  init[3][1][17] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor final_attention = tied_attention(8);
  const TokenDropper exact(config_for(Mode::exact, NewlinePolicy::none));
  const auto gpu = exact.select(init.cuda(), final_attention.cuda(), heterogeneous_batch());
  EXPECT_THROW(gpu.check(), hired::Error);
  EXPECT_THROW((void)static_cast<const hired::Selection&>(gpu.host), hired::Error);
  const TokenDropper reference(config_for(Mode::reference, NewlinePolicy::none));
  EXPECT_THROW(reference.select(init.cuda(), final_attention.cuda(), heterogeneous_batch()),
               hired::Error);
  EXPECT_THROW(exact.select(init, final_attention, heterogeneous_batch()), hired::Error);
}

#if HIRED_TEST_CUDA_DISPATCH  // hired built with its kernels: no host round trip to capture
struct Captured {
  hired::TokenSelection selection;
  hired::PackedFeatures packed;
};

/// `select()` and `dropper.gather` on a side stream: once as a warm-up, once captured in a CUDA
/// graph; then the captured outputs are zeroed and the graph replayed, so what they hold
/// afterwards is what the replay wrote.
template <class Select>
Captured capture_and_replay(const TokenDropper& dropper, const Select& select,
                            const at::Tensor& features, const at::Tensor& newline) {
  const auto run = [&] {
    hired::TokenSelection selection = select();
    hired::PackedFeatures rows = dropper.gather(selection, features, newline);
    return Captured{std::move(selection), std::move(rows)};
  };
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
  const c10::cuda::CUDAStreamGuard guard(side);
  (void)run();  // warm-up: uploads the layout's parameters outside the capture
  side.synchronize();
  at::cuda::CUDAGraph graph;
  graph.capture_begin();
  Captured captured = run();
  graph.capture_end();
  captured.packed.features.zero_();
  captured.selection.kept.zero_();
  graph.replay();
  side.synchronize();
  return captured;
}

/// What a replayed capture wrote equals the CPU path's selection and packing.
void expect_equal_to_cpu(const Captured& replayed, const hired::TokenSelection& cpu,
                         const hired::PackedFeatures& cpu_packed) {
  EXPECT_TRUE(at::equal(replayed.selection.kept.cpu(), cpu.kept));
  EXPECT_TRUE(at::equal(replayed.selection.kept_offsets.cpu(), cpu.kept_offsets));
  EXPECT_TRUE(at::equal(replayed.packed.features.cpu(), cpu_packed.features));
  EXPECT_TRUE(at::equal(replayed.packed.source_rows.cpu(), cpu_packed.source_rows));
}

// select + gather captured once and replayed: the replay writes the same outputs (the
// captured tensors' memory) as the eager CPU path computes.
TEST_F(TokenDropperCuda, SelectAndGatherCaptureInACudaGraph) {
  const ImageBatch images = heterogeneous_batch();
  const at::Tensor init = tied_attention(9).cuda(), final_attention = tied_attention(10).cuda();
  const at::Tensor features = at::randn({kPartitions, kTokens, kDim}, at::kFloat).cuda();
  const at::Tensor newline = at::randn({kDim}, at::kFloat).cuda();
  const TokenDropper dropper(config_for(Mode::exact, NewlinePolicy::every_row));
  const auto cpu = dropper.select(init.cpu(), final_attention.cpu(), images);
  const auto cpu_packed = dropper.gather(cpu, features.cpu(), newline.cpu());

  const Captured replayed = capture_and_replay(
      dropper, [&] { return dropper.select(init, final_attention, images); }, features, newline);
  expect_equal_to_cpu(replayed, cpu, cpu_packed);
}

#endif

// ---- From CLS queries and keys ----

/// One layer's q, k as chunks of a fused qkv projection [sum P, N + 1, 3 * H * d] (strided
/// views), with tied keys: every key is one of a few rows, so the top-k cut has ties.
hired::QueryKeys tied_query_keys(std::int64_t seed, std::int64_t heads, std::int64_t head_dim) {
  at::manual_seed(seed);
  const std::int64_t width = heads * head_dim;
  const at::Tensor rows = at::randn({kPartitions, 5, 3 * width});
  const at::Tensor pick = at::randint(0, 5, {kTokens + 1}, at::kLong);
  const auto chunks = rows.index_select(1, pick).chunk(3, -1);
  return {chunks[0], chunks[1], heads};
}

hired::QueryKeys to(const hired::QueryKeys& in, const at::TensorOptions& options) {
  return {in.q.to(options), in.k.to(options), in.heads};
}

TEST_F(TokenDropperCuda, QueryKeysMatchTheCpuPathBitForBit) {
  const ImageBatch images = heterogeneous_batch();
  const hired::QueryKeys init = tied_query_keys(11, 16, 64), final = tied_query_keys(12, 16, 64);
  const at::Tensor features = at::randn({kPartitions, kTokens, kDim}, at::kHalf);
  const at::Tensor newline = at::randn({kDim}, at::kHalf);
  for (const Mode mode : {Mode::exact, Mode::reference})
    for (const NewlinePolicy policy : {NewlinePolicy::none, NewlinePolicy::kept_rows})
      for (const at::ScalarType dtype : {at::kFloat, at::kHalf, at::kBFloat16, at::kDouble}) {
        const std::string what = std::string(hired::to_string(mode)) + " " +
                                 std::string(hired::to_string(policy)) + " " + c10::toString(dtype);
        const TokenDropper dropper(config_for(mode, policy));
        const hired::QueryKeys i = to(init, at::TensorOptions().dtype(dtype));
        const hired::QueryKeys f = to(final, at::TensorOptions().dtype(dtype));
        const auto cpu = dropper.select(i, f, images);
        const auto gpu = dropper.select(to(i, at::kCUDA), to(f, at::kCUDA), images);
        expect_same_selection(gpu, cpu, what);
        expect_same_packing(dropper.gather(gpu, features.cuda(), newline.cuda()),
                            dropper.gather(cpu, features, newline), what);
      }
}

TEST_F(TokenDropperCuda, QueryKeysInvalidLogitIsRaised) {
  hired::QueryKeys init = tied_query_keys(13, 4, 16);
  const hired::QueryKeys final = tied_query_keys(14, 4, 16);
  init.k = init.k.clone();
  init.k[0][9][5] = std::numeric_limits<float>::quiet_NaN();
  const TokenDropper exact(config_for(Mode::exact, NewlinePolicy::none));
  const auto gpu = exact.select(to(init, at::kCUDA), to(final, at::kCUDA), heterogeneous_batch());
  EXPECT_THROW(gpu.check(), hired::Error);
  EXPECT_THROW(exact.select(init, final, heterogeneous_batch()), hired::Error);
  hired::QueryKeys wide = tied_query_keys(15, 1, 300);  // head dim beyond the kernels' 256
  EXPECT_THROW(exact.select(to(wide, at::kCUDA), to(wide, at::kCUDA), heterogeneous_batch()),
               hired::Error);
}

#if HIRED_TEST_CUDA_DISPATCH
// The same from q/k: the scores are computed inside the captured select_kernel.
TEST_F(TokenDropperCuda, QueryKeysSelectAndGatherCaptureInACudaGraph) {
  const ImageBatch images = heterogeneous_batch();
  const hired::QueryKeys init = tied_query_keys(31, 16, 64), final = tied_query_keys(32, 16, 64);
  const hired::QueryKeys init_gpu = to(init, at::kCUDA), final_gpu = to(final, at::kCUDA);
  const at::Tensor features = at::randn({kPartitions, kTokens, kDim}, at::kHalf).cuda();
  const at::Tensor newline = at::randn({kDim}, at::kHalf).cuda();
  const TokenDropper dropper(config_for(Mode::exact, NewlinePolicy::none));
  const auto cpu = dropper.select(init, final, images);
  const auto cpu_packed = dropper.gather(cpu, features.cpu(), newline.cpu());

  const Captured replayed = capture_and_replay(
      dropper, [&] { return dropper.select(init_gpu, final_gpu, images); }, features, newline);
  expect_equal_to_cpu(replayed, cpu, cpu_packed);
}
#endif

// Not a benchmark (no time is asserted): the time of select + gather at the paper's shapes
// (batch 4 of 600x600, 16 heads, D = 1024), printed for scripts/gpu_check.sh's table.
TEST_F(TokenDropperCuda, ReportsTheTimeOfSelectAndGather) {
  const std::int64_t images = 4, partitions = 5 * images;
  ImageBatch batch;
  batch.num_partitions = at::full({images}, 5, at::kLong);
  batch.image_sizes = at::full({images, 2}, 600, at::kLong);
  const at::Tensor init = at::rand({partitions, 16, kTokens + 1}, at::kFloat).cuda();
  const at::Tensor final_attention = at::rand({partitions, 16, kTokens + 1}, at::kFloat).cuda();
  const at::Tensor features = at::randn({partitions, kTokens, 1024}, at::kHalf).cuda();
  const at::Tensor newline = at::randn({1024}, at::kHalf).cuda();
  for (const Mode mode : {Mode::exact, Mode::reference}) {
    const TokenDropper dropper(config_for(mode, NewlinePolicy::every_row));
    const auto run = [&] {
      return dropper.gather(dropper.select(init, final_attention, batch), features, newline);
    };
    for (int i = 0; i < 5; ++i) (void)run().features.sum().item<float>();  // warm-up, sync
    constexpr int repeats = 50;
    const auto start = std::chrono::steady_clock::now();
    at::Tensor last;
    for (int i = 0; i < repeats; ++i) last = run().features;
    (void)last.sum().item<float>();  // waits for the stream
    const double us = std::chrono::duration<double, std::micro>(
                          std::chrono::steady_clock::now() - start).count() / repeats;
    std::printf("HIRED_GPU_TIME %s select+gather batch 4 (600x600, D 1024, f16): %.1f us\n",
                std::string(hired::to_string(mode)).c_str(), us);
  }
  // From q/k (the paper's CLIP-L: 16 heads of 64, f16), scored inside select_kernel.
  const auto qk = [&](std::int64_t seed) {
    at::manual_seed(seed);
    const auto chunks =
        at::randn({partitions, kTokens + 1, 3 * 1024}, at::kHalf).cuda().chunk(3, -1);
    return hired::QueryKeys{chunks[0], chunks[1], 16};
  };
  const hired::QueryKeys qk_init = qk(21), qk_final = qk(22);
  const TokenDropper dropper(config_for(Mode::exact, NewlinePolicy::every_row));
  const auto run = [&] {
    return dropper.gather(dropper.select(qk_init, qk_final, batch), features, newline);
  };
  for (int i = 0; i < 5; ++i) (void)run().features.sum().item<float>();
  constexpr int repeats = 50;
  const auto start = std::chrono::steady_clock::now();
  at::Tensor last;
  for (int i = 0; i < repeats; ++i) last = run().features;
  (void)last.sum().item<float>();
  const double us = std::chrono::duration<double, std::micro>(
                        std::chrono::steady_clock::now() - start).count() / repeats;
  std::printf("HIRED_GPU_TIME exact q/k select+gather batch 4 (600x600, 16 x 64, f16): %.1f us\n",
              us);
}

}  // namespace
