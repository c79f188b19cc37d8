// Selection overhead at the paper's shapes (600x600 images: 5 partitions x 577 tokens, 16 heads,
// head dim 64, feature width 1024; batch 1 and 4): hired (CLS scores from q/k -> budgets ->
// top-k -> gather; the scores through cls_attention's rows, or from the q/k directly) against
// the published formulation restated in plain LibTorch (full attention maps of both layers,
// per-image loops, topk, masks, masked packing).
//   build/benchmarks/hired_selection_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// HIRED_BENCH_DEVICE=cuda runs both on the GPU (hired: its two kernel launches), synchronising
// after every iteration; the default is the CPU.
// Before timing, both are checked to produce the same packed features (reference mode).
// BM_ClipLVisionTower times the vision tower the selection sits behind (one pass, ~20 s on 2
// cores): the selection's share of it is BM_Hired / BM_ClipLVisionTower.
#include "reference_selection.hpp"

#ifdef HIRED_WITH_RUNTIME
#include "hired/llava/config.hpp"
#include "hired/llava/vision.hpp"
#endif

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <benchmark/benchmark.h>

#if __has_include(<c10/cuda/CUDAFunctions.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDAFunctions.h>
#define HIRED_BENCH_CUDA 1
#endif

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

namespace {

hired::TokenDropper dropper(hired::Mode mode) {
  hired::DropConfig config;
  config.mode = mode;
  config.budget = hired::Budget::rate(0.2);
  config.newline = hired::NewlinePolicy::none;
  return hired::TokenDropper(config);
}

/// HIRED_BENCH_DEVICE: "cpu" (default) or "cuda"; an unknown value or an unusable device
/// stops the benchmark.
const at::Device& bench_device() {
  static const at::Device device = [] {
    const char* name = std::getenv("HIRED_BENCH_DEVICE");
    const std::string value = name != nullptr ? name : "cpu";
    if (value == "cpu") return at::Device(at::kCPU);
    if (value == "cuda" && at::hasCUDA()) return at::Device(at::kCUDA, 0);
    std::fprintf(stderr, "HIRED_BENCH_DEVICE=%s: %s\n", value.c_str(),
                 value == "cuda" ? "no CUDA device (or a CPU-only LibTorch)" : "use cpu or cuda");
    std::exit(2);
  }();
  return device;
}

/// Waits for the device's work, so that an iteration's time is the work's.
void wait_for_device() {
#ifdef HIRED_BENCH_CUDA
  if (bench_device().is_cuda()) c10::cuda::device_synchronize();
#endif
}

const hired_bench::SelectionInputs& inputs(std::int64_t images) {
  static std::map<std::int64_t, hired_bench::SelectionInputs> cache;
  auto it = cache.find(images);
  if (it == cache.end()) {
    at::manual_seed(images);
    const at::TensorOptions options = at::TensorOptions(at::kFloat).device(bench_device());
    it = cache.emplace(images, hired_bench::SelectionInputs::paper_shapes(images, options)).first;
    if (!hired_bench::matches_reference(it->second, 0.2, 0.5)) {
      std::fprintf(stderr, "selection bench: hired and the reference formulation disagree\n");
      std::exit(1);
    }
  }
  return it->second;
}

void BM_ReferenceFormulation(benchmark::State& state) {
  const auto& in = inputs(state.range(0));
  for (auto _ : state) {
    benchmark::DoNotOptimize(hired_bench::reference_selection(in, 0.2, 0.5));
    wait_for_device();
  }
  state.SetLabel("full attention maps, per-image loop, masks, " + bench_device().str());
}

void BM_Hired(benchmark::State& state) {
  const auto& in = inputs(state.range(0));
  const auto mode = static_cast<hired::Mode>(state.range(1));
  const auto scoring = static_cast<hired_bench::Scoring>(state.range(2));
  const hired::TokenDropper d = dropper(mode);
  for (auto _ : state) {
    benchmark::DoNotOptimize(hired_bench::hired_selection(in, d, scoring));
    wait_for_device();
  }
  state.SetLabel(std::string(mode == hired::Mode::exact ? "exact mode" : "reference mode") +
                 (scoring == hired_bench::Scoring::query_keys ? ", from q/k (qk_scores), "
                                                              : ", cls_attention rows, ") +
                 bench_device().str());
}

#ifdef HIRED_WITH_RUNTIME
/// The vision tower the selection sits behind: CLIP ViT-L/14-336 (random weights, layers 0..22)
/// on one 600x600 image's 5 partitions. Selection time / this = selection's share.
void BM_ClipLVisionTower(benchmark::State& state) {
  const auto config = hired::io::LlavaNextConfig::preset("llava-next-7b");
  hired::llava::Weights weights = hired::llava::Weights::random(0);
  const hired::llava::VisionTower tower(config, weights);
  at::manual_seed(0);
  const at::Tensor pixels = at::randn({5, 3, 336, 336});
  const std::int64_t capture[] = {0, config.feature_layer_index()};
  for (auto _ : state) benchmark::DoNotOptimize(tower.forward(pixels, capture));
  state.SetLabel("CLIP-L/336, 23 layers, 5 partitions, CLS rows captured");
}
BENCHMARK(BM_ClipLVisionTower)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

BENCHMARK(BM_ReferenceFormulation)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
constexpr int kRows = static_cast<int>(hired_bench::Scoring::attention_rows);
constexpr int kQk = static_cast<int>(hired_bench::Scoring::query_keys);
constexpr int kExact = static_cast<int>(hired::Mode::exact);
constexpr int kReference = static_cast<int>(hired::Mode::reference);
BENCHMARK(BM_Hired)
    ->Args({1, kExact, kRows})
    ->Args({1, kReference, kRows})
    ->Args({1, kExact, kQk})
    ->Args({4, kExact, kRows})
    ->Args({4, kReference, kRows})
    ->Args({4, kExact, kQk})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
