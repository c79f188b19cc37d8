// Host cost of hired's selection at the paper's shapes: 600x600 images (5 partitions x 577
// keys), 16 heads, batch 1 and 4. Google Benchmark; prints medians over repetitions.
//   build/benchmarks/hired_core_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include "hired/scores.hpp"
#include "hired/selection.hpp"

#include <benchmark/benchmark.h>

#include <random>
#include <vector>

namespace {

constexpr std::int64_t partitions = 5, heads = 16, keys = 577;

/// Softmax-like rows: positive, summing to about one per head.
std::vector<float> attention_rows(std::int64_t images, unsigned seed) {
  std::mt19937 rng(seed);
  std::exponential_distribution<float> e(1.0f);
  std::vector<float> v(static_cast<std::size_t>(images * partitions * heads * keys));
  for (float& x : v) x = e(rng) / float(keys);
  return v;
}

std::vector<hired::ImageLayout> layouts(std::int64_t images) {
  return std::vector<hired::ImageLayout>(static_cast<std::size_t>(images),
                                         {partitions, {2, 2}, hired::Size2{600, 600}});
}

void BM_SumHeads(benchmark::State& state) {
  const std::int64_t images = state.range(0);
  const std::vector<float> attn = attention_rows(images, 1);
  for (auto _ : state)
    benchmark::DoNotOptimize(hired::sum_heads(attn.data(), images * partitions, heads, keys, "attn"));
}

void BM_SelectTokens(benchmark::State& state) {
  const std::int64_t images = state.range(0);
  const auto mode = static_cast<hired::Mode>(state.range(1));
  const std::int64_t rows = images * partitions;
  const std::vector<float> init = hired::sum_heads(attention_rows(images, 2).data(), rows, heads, keys, "init");
  const std::vector<float> fin = hired::sum_heads(attention_rows(images, 3).data(), rows, heads, keys, "final");
  hired::DropConfig config;
  config.mode = mode;
  config.budget = hired::Budget::rate(0.2);
  for (auto _ : state)
    benchmark::DoNotOptimize(hired::select_tokens(init, fin, layouts(images), {336, 24}, config));
  state.SetLabel(std::string(hired::to_string(mode)));
}

void BM_PackPlan(benchmark::State& state) {
  const std::int64_t images = state.range(0), rows = images * partitions;
  const std::vector<float> s = hired::sum_heads(attention_rows(images, 4).data(), rows, heads, keys, "s");
  hired::DropConfig config;
  config.budget = hired::Budget::rate(0.2);
  const hired::Selection selection = hired::select_tokens(s, s, layouts(images), {336, 24}, config);
  for (auto _ : state) benchmark::DoNotOptimize(hired::pack_plan(selection, hired::NewlinePolicy::every_row));
}

BENCHMARK(BM_SumHeads)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SelectTokens)
    ->Args({1, static_cast<int>(hired::Mode::exact)})
    ->Args({1, static_cast<int>(hired::Mode::reference)})
    ->Args({4, static_cast<int>(hired::Mode::exact)})
    ->Args({4, static_cast<int>(hired::Mode::reference)})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PackPlan)->Arg(1)->Arg(4)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
