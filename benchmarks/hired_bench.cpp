// hired_bench: the paper's throughput measurement (Arif et al., HiRED, Table 5 / Fig. 5) on the
// bundled 600x600 image, for a list of budgets and batch sizes, plus the selection-overhead
// comparison. Prints a table like the paper's on stdout, progress on stderr.
//
//   hired_bench                                   # preset mini on CPU, budgets 1.0 and 0.2
//   hired_bench --preset llava-next-7b --batch 1,4 --budgets 1.0,0.4,0.2,0.1   # CUDA, fp16
//   hired_bench --model DIR --device cuda --dtype fp16 --json out.json --plot out.png
//
// Method (docs/DESIGN.md, "Performance method"): `--warmup` unmeasured runs of every row, then
// `--reps` rounds that each run every row once, interleaved (see measure_rows); medians with
// their spread (min..max); on the CPU as many threads as cores are idle at start
// (cpu_threads.hpp). TTFT = vision tower + selection +
// projector + merge + LLM prefill up to the first token; throughput = generated tokens / total
// generation time (the paper's definition, all rows of the batch); decode tok/s = tokens after
// the first / decode time. Peak memory: the CUDA caching allocator's peak on GPU, the growth
// of LibTorch's allocated CPU bytes (weights included) on CPU. The 100% row runs stock LLaVA-Next (no dropping); others run HiRED.
#include "bench_plot.hpp"
#include "cli_args.hpp"
#include "cpu_threads.hpp"
#include "hired/error.hpp"
#include "hired/llava/model.hpp"
#include "hired/llava/stopwatch.hpp"
#include "hired/io/tokenizer.hpp"
#include "reference_selection.hpp"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#define HIRED_BENCH_CUDA 1
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using hired::check;
using hired::fail;
using hired::io::LlavaNextConfig;
using hired::llava::LlavaNextModel;

constexpr std::string_view usage =
    "usage: hired_bench [--preset NAME | --model DIR] [--budgets 1.0,0.2]\n"
    "                   [--batch 1[,4]] [--image PATH] [--device cpu|cuda] [--dtype fp32|fp16|bf16]\n"
    "                   [--max-new-tokens 15] [--warmup 1] [--reps 5] [--alpha 0.5]\n"
    "                   [--mode exact|reference] [--seed S] [--json FILE] [--plot FILE.png]\n"
    "                   [--threads N] [--no-selection]\n"
    "\n"
    "Defaults: preset mini on CPU in fp32; the other presets (real checkpoint shapes with random\n"
    "weights: llava-1.5-7b, llava-next-7b, llava-next-vicuna-13b, llava-next-mistral-7b,\n"
    "llava-next-34b, llava-next-72b, llava-next-110b) on CUDA in fp16 (the paper's P40 recipe);\n"
    "the bundled 600x600 image; 15 new tokens, greedy, EOS ignored. CPU threads: --threads,\n"
    "else OMP_NUM_THREADS, else the cores idle at start (a busy machine gets fewer threads, not\n"
    "threads that stall each other).\n";

struct Options {
  std::string preset = "mini";
  std::optional<fs::path> model_dir;
  std::vector<double> budgets{1.0, 0.2};
  std::vector<std::int64_t> batches{1};
  fs::path image = HIRED_SAMPLE_IMAGE;
  std::optional<at::Device> device;
  std::optional<at::ScalarType> dtype;
  std::int64_t max_new_tokens = 15, warmup = 1, reps = 5;
  std::optional<std::int64_t> threads;
  hired::DropConfig drop;
  std::uint64_t seed = 0;
  std::optional<fs::path> json, plot;
  bool selection = true;
};

Options parse(int argc, char** argv) {
  Options o;
  hired::cli::DropFlags drop;
  bool preset_given = false;
  hired::cli::for_each_argument(argc, argv, [&](std::string_view arg, auto value) {
    if (drop.consume(arg, value)) {
      check(!drop.budget_given(), "{}: budgets are given by --budgets", arg);
      return;
    }
    if (arg == "--preset") {
      o.preset = std::string(value());
      preset_given = true;
    }
    else if (arg == "--model") o.model_dir = fs::path(value());
    else if (arg == "--budgets") {
      o.budgets = hired::cli::parse_list(arg, value(), hired::cli::parse_double);
      for (const double b : o.budgets)
        check(b > 0 && b <= 1, "--budgets: {} is outside (0, 1]", b);
    } else if (arg == "--batch") {
      o.batches = hired::cli::parse_list(arg, value(), hired::cli::parse_int);
      for (const std::int64_t b : o.batches) check(b >= 1 && b <= 64, "--batch: {} is outside [1, 64]", b);
    } else if (arg == "--image") o.image = fs::path(value());
    else if (arg == "--device") o.device = hired::llava::parse_device(arg, value());
    else if (arg == "--dtype") o.dtype = hired::llava::parse_dtype(arg, value());
    else if (arg == "--max-new-tokens") {
      o.max_new_tokens = hired::cli::parse_int(arg, value());
      check(o.max_new_tokens >= 1, "--max-new-tokens: {} must be at least 1", o.max_new_tokens);
    } else if (arg == "--warmup") {
      o.warmup = hired::cli::parse_int(arg, value());
      check(o.warmup >= 0, "--warmup: {} must be non-negative", o.warmup);
    } else if (arg == "--reps") {
      o.reps = hired::cli::parse_int(arg, value());
      check(o.reps >= 1, "--reps: {} must be at least 1", o.reps);
    } else if (arg == "--threads") {
      o.threads = hired::cli::parse_int(arg, value());
      check(*o.threads >= 1 && *o.threads <= 1024, "--threads: {} is outside [1, 1024]", *o.threads);
    } else if (arg == "--seed") {
      o.seed = hired::cli::parse_seed(arg, value());
    } else if (arg == "--json") o.json = fs::path(value());
    else if (arg == "--plot") o.plot = fs::path(value());
    else if (arg == "--no-selection") o.selection = false;
    else if (arg == "--help" || arg == "-h") {
      std::cout << usage;
      std::exit(0);
    } else fail("{}: unknown argument (see --help)", arg);
  });
  o.drop = drop.config();
  check(!(preset_given && o.model_dir), "--model, --preset: give one, not both");
  if (!o.model_dir) (void)LlavaNextConfig::preset(o.preset);  // names an unknown preset
  std::sort(o.budgets.begin(), o.budgets.end(), std::greater<>());
  o.budgets.erase(std::unique(o.budgets.begin(), o.budgets.end()), o.budgets.end());
  if (o.budgets.front() != 1.0) o.budgets.insert(o.budgets.begin(), 1.0);  // the baseline row
  const bool big = !o.model_dir && o.preset != "mini";
  if (!o.device) o.device = big ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  if (!o.dtype) o.dtype = o.device->is_cuda() ? at::kHalf : at::kFloat;
  check(o.device->is_cpu() || at::hasCUDA(),
        "--preset {}: runs on CUDA unless --device cpu is given, and this LibTorch build sees no "
        "CUDA device", o.preset);
  return o;
}

void say(const std::string& text) { fmt::print(stderr, "hired_bench: {}\n", text); }

// --- memory -------------------------------------------------------------------------------

/// Counts the bytes LibTorch holds on the CPU, so that a CPU row reports a peak of allocated
/// bytes like the CUDA caching allocator's (peak RSS is no measure here: after the warm-up,
/// glibc hands freed blocks back to the next run and the resident size barely moves).
class CountingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    // A 64-byte header before the data holds the size; the data keeps alloc_cpu's alignment,
    // and data == context, as raw_allocate (used by oneDNN) requires.
    auto* base = static_cast<std::byte*>(c10::alloc_cpu(bytes + kHeader));
    std::memcpy(base, &bytes, sizeof bytes);
    const std::int64_t now = current_ += static_cast<std::int64_t>(bytes);
    for (std::int64_t peak = peak_; now > peak && !peak_.compare_exchange_weak(peak, now);) {
    }
    void* data = base + kHeader;
    return {data, data, &release, c10::Device(c10::kCPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    std::memcpy(dest, src, count);
  }
  void reset_peak() { peak_ = current_.load(); }
  std::int64_t peak() const { return peak_; }

 private:
  static constexpr std::size_t kHeader = 64;
  static void release(void* data) {
    if (data == nullptr) return;
    auto* base = static_cast<std::byte*>(data) - kHeader;
    std::size_t bytes = 0;
    std::memcpy(&bytes, base, sizeof bytes);
    instance().current_ -= static_cast<std::int64_t>(bytes);
    c10::free_cpu(base);
  }
  static CountingCpuAllocator& instance();
  std::atomic<std::int64_t> current_{0}, peak_{0};
  friend CountingCpuAllocator& cpu_allocator();
};

CountingCpuAllocator& CountingCpuAllocator::instance() {
  static CountingCpuAllocator allocator;
  return allocator;
}

/// Installs the counting allocator on first use (before the weights, so they are counted).
CountingCpuAllocator& cpu_allocator() {
  static CountingCpuAllocator& allocator = [] () -> CountingCpuAllocator& {
    c10::SetCPUAllocator(&CountingCpuAllocator::instance(), /*priority=*/100);
    return CountingCpuAllocator::instance();
  }();
  return allocator;
}

/// Peak memory of one measured run, weights included: the CUDA caching allocator's peak of
/// allocated bytes on a GPU, the counting allocator's on the CPU.
class PeakMemory {
 public:
  explicit PeakMemory(const at::Device& device) : device_(device) {
#ifdef HIRED_BENCH_CUDA
    if (device_.is_cuda()) {
      c10::cuda::device_synchronize();
      c10::cuda::CUDACachingAllocator::resetPeakStats(device_.index() < 0 ? 0 : device_.index());
      return;
    }
#endif
    cpu_allocator().reset_peak();
  }
  std::int64_t peak_bytes() const {
#ifdef HIRED_BENCH_CUDA
    if (device_.is_cuda()) {
      c10::cuda::device_synchronize();
      const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
          device_.index() < 0 ? 0 : device_.index());
      return stats.allocated_bytes[0].peak;  // aggregate over pools
    }
#endif
    return cpu_allocator().peak();
  }

 private:
  at::Device device_;
};

void synchronize(const at::Device& device) {
#ifdef HIRED_BENCH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

// --- the FLOP ceiling ---------------------------------------------------------------------

/// Multiply-adds x 2 of the vision tower on `partitions` partitions running `layers` layers
/// (hired's runtime and vLLM stop at the feature layer; transformers runs them all), attention
/// included.
double vision_flops(const LlavaNextConfig& c, std::int64_t partitions, std::int64_t layers) {
  const double d = double(c.vision.hidden_size), inter = double(c.vision.intermediate_size);
  const double patches = double(c.vision.num_patches()), t = patches + 1;
  const double patch_embed = 2 * patches * 3 * double(c.vision.patch_size * c.vision.patch_size) * d;
  const double per_layer = 2 * t * (4 * d * d + 2 * d * inter) + 2 * 2 * t * t * d;
  return double(partitions) * (patch_embed + double(layers) * per_layer);
}

/// The projector on `rows` visual tokens and the LLM prefill of one `tokens`-long sequence
/// (causal attention: each position attends to itself and the earlier ones, a sliding-window
/// layer to the last `window` of them; logits of the last position only).
double prefill_flops(const LlavaNextConfig& c, std::int64_t rows, std::int64_t tokens) {
  const auto& t = c.text;
  const double d = double(t.hidden_size), q = double(t.num_attention_heads * t.head_dim);
  const double kv = double(t.num_key_value_heads * t.head_dim), l = double(tokens);
  const double projector = 2 * double(rows) * (double(c.projector_input_size()) * d + d * d);
  const double linear = 2 * l * (d * q + 2 * d * kv + q * d + 3 * d * double(t.intermediate_size));
  double total = projector + 2 * d * double(t.vocab_size);
  for (std::int64_t layer = 0; layer < t.num_hidden_layers; ++layer) {
    const double w = double(t.attention_window(layer));
    const double pairs = w > 0 && w < l ? w * (w + 1) / 2 + (l - w) * w : l * (l + 1) / 2;
    total += linear + 2 * 2 * pairs * q;
  }
  return total;
}

// --- one measured run ---------------------------------------------------------------------

struct Run {
  double ttft = 0, total = 0, decode = 0, vision = 0;
  std::int64_t generated = 0;       // tokens over the whole batch
  std::int64_t visual_tokens = 0;   // per image (all images of a row are the same)
  std::int64_t image_rows = 0;      // per image, newline rows included
  std::int64_t prompt_tokens = 0;   // per sequence
  std::int64_t peak_bytes = 0;
};

Run run_once(const LlavaNextModel& model, const hired::llava::ImageInputs& images,
             const std::vector<std::vector<std::int64_t>>& prompts, const hired::TokenDropper* dropper,
             std::int64_t new_tokens) {
  const at::Device device = model.options().device;
  PeakMemory memory(device);
  synchronize(device);
  const hired::llava::Stopwatch encode_time;
  const hired::llava::EncodedImages encoded = model.encode_images(images, dropper);
  const hired::llava::PromptEmbeddings input = model.merge(prompts, encoded);
  synchronize(device);
  const double encode = encode_time.seconds();
  hired::llava::GenerationOptions options;
  options.max_new_tokens = new_tokens;
  options.stop_at_eos = false;  // the paper's fixed 15 new tokens
  const hired::llava::Generation out =
      hired::llava::generate_greedy(model.language(), input.embeds, input.lengths, options);
  synchronize(device);
  Run r;
  r.ttft = encode + out.prefill_seconds;
  r.total = encode + out.total_seconds;
  r.decode = out.total_seconds - out.prefill_seconds;
  r.vision = encoded.vision_seconds;
  for (const auto& tokens : out.tokens) r.generated += static_cast<std::int64_t>(tokens.size());
  r.visual_tokens = encoded.rows.visual_tokens.front();
  r.image_rows = encoded.rows.lengths[0].item<std::int64_t>();
  r.prompt_tokens = *std::max_element(input.lengths.begin(), input.lengths.end());
  r.peak_bytes = memory.peak_bytes();
  return r;
}

// --- rows ---------------------------------------------------------------------------------

struct Stat {
  double median = 0, min = 0, max = 0;
  static Stat of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return {n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v.front(), v.back()};
  }
};

struct Row {
  double budget = 1;
  std::int64_t batch = 1;
  bool out_of_memory = false;
  std::string error;
  std::int64_t visual_tokens = 0, image_rows = 0, prompt_tokens = 0;
  Stat ttft, throughput, decode_rate, vision;
  std::vector<double> ttft_samples;  // one per round, in round order
  std::int64_t peak_bytes = 0;
  double flops = 0, ceiling = 1;  // ceiling: FLOPs of the batch's 100% row / this row's
  double whole_tower_flops = 0, whole_tower_ceiling = 1;  // the same, every vision layer run
};

/// A row while it is measured: its inputs and the samples of its runs so far.
struct RowRun {
  Row row;
  hired::llava::ImageInputs images;
  std::vector<std::vector<std::int64_t>> prompts;
  std::optional<hired::TokenDropper> dropper;  // none: stock LLaVA-Next (the 100% row)
  std::vector<double> ttft, throughput, decode_rate, vision;
};

RowRun prepare_row(const Options& o, double budget, std::int64_t batch,
                   const hired::llava::ImageInputs& one_image, const std::vector<std::int64_t>& prompt) {
  RowRun r;
  r.row.budget = budget;
  r.row.batch = batch;
  r.images.pixel_values = one_image.pixel_values.repeat({batch, 1, 1, 1});
  r.images.image_sizes = one_image.image_sizes.repeat({batch, 1});
  r.images.num_partitions = one_image.num_partitions.repeat({batch});
  r.prompts.assign(static_cast<std::size_t>(batch), prompt);
  if (budget < 1.0) {
    hired::DropConfig c = o.drop;
    c.budget = hired::Budget::rate(budget);
    r.dropper.emplace(c);
  }
  return r;
}

/// Runs a row once and keeps the sample unless it is a warm-up. A row that runs out of
/// memory is marked and left out of the later rounds.
void run_row(const LlavaNextModel& model, const Options& o, RowRun& r, std::string_view stage) {
  Row& row = r.row;
  if (row.out_of_memory) return;
  say(fmt::format("{}: batch {} budget {:.0f}%", stage, row.batch, row.budget * 100));
  try {
    const Run run = run_once(model, r.images, r.prompts, r.dropper ? &*r.dropper : nullptr,
                             o.max_new_tokens);
    if (stage.starts_with("warm-up")) return;
    r.ttft.push_back(run.ttft);
    r.throughput.push_back(double(run.generated) / run.total);
    r.decode_rate.push_back(double(run.generated - row.batch) / std::max(run.decode, 1e-9));
    r.vision.push_back(run.vision);
    row.visual_tokens = run.visual_tokens;
    row.image_rows = run.image_rows;
    row.prompt_tokens = run.prompt_tokens;
    row.peak_bytes = std::max(row.peak_bytes, run.peak_bytes);
  } catch (const c10::OutOfMemoryError&) {
    row.out_of_memory = true;
    row.error = "out of memory";
    say(fmt::format("batch {} budget {:.0f}%: out of memory", row.batch, row.budget * 100));
  }
}

/// Every row of the table, measured interleaved so that a burst of load on a shared machine
/// lands on all rows alike rather than on one: a warm-up of each row, then `--reps` rounds,
/// each running every row once, in alternating order (forward, backward, ...) so that a slow
/// drift of the machine's speed does not favour the rows that come first.
std::vector<Row> measure_rows(const LlavaNextModel& model, const Options& o,
                              const hired::llava::ImageInputs& one_image,
                              const std::vector<std::int64_t>& prompt) {
  std::vector<RowRun> runs;
  for (const std::int64_t batch : o.batches)
    for (const double budget : o.budgets) runs.push_back(prepare_row(o, budget, batch, one_image, prompt));
  for (std::int64_t i = 0; i < o.warmup; ++i)
    for (RowRun& r : runs) run_row(model, o, r, fmt::format("warm-up {}/{}", i + 1, o.warmup));
  for (std::int64_t round = 0; round < o.reps; ++round) {
    const std::string stage = fmt::format("round {}/{}", round + 1, o.reps);
    if (round % 2 == 0)
      for (RowRun& r : runs) run_row(model, o, r, stage);
    else
      for (auto r = runs.rbegin(); r != runs.rend(); ++r) run_row(model, o, *r, stage);
  }

  std::vector<Row> rows;
  const std::int64_t partitions_per_image = one_image.num_partitions.sum().item<std::int64_t>();
  for (RowRun& r : runs) {
    Row& row = r.row;
    if (!row.out_of_memory) {
      row.ttft = Stat::of(r.ttft);
      row.ttft_samples = r.ttft;
      row.throughput = Stat::of(r.throughput);
      row.decode_rate = Stat::of(r.decode_rate);
      row.vision = Stat::of(r.vision);
      const LlavaNextConfig& c = model.config();
      const std::int64_t partitions = partitions_per_image * row.batch;
      const double prefill = double(row.batch) * prefill_flops(c, row.visual_tokens, row.prompt_tokens);
      row.flops = vision_flops(c, partitions, c.vision_layers_run()) + prefill;
      row.whole_tower_flops = vision_flops(c, partitions, c.vision.num_hidden_layers) + prefill;
    }
    rows.push_back(row);
  }
  // Each batch's first row is its 100% row (the budgets are sorted, 1.0 first).
  for (std::size_t first = 0; first < rows.size(); first += o.budgets.size())
    for (std::size_t i = first; i < first + o.budgets.size(); ++i)
      if (!rows[i].out_of_memory && !rows[first].out_of_memory && rows[i].flops > 0) {
        rows[i].ceiling = rows[first].flops / rows[i].flops;
        rows[i].whole_tower_ceiling = rows[first].whole_tower_flops / rows[i].whole_tower_flops;
      }
  return rows;
}

// --- selection overhead -------------------------------------------------------------------

struct SelectionOverhead {
  Stat hired, hired_qk, reference;  // hired: through cls_attention's rows; hired_qk: from q/k
};

/// hired's selection against the published formulation at the paper's shapes (one 600x600
/// image, 16 heads, head dim 64, width 1024), on the benchmark's device; checked equal first.
SelectionOverhead measure_selection(const Options& o) {
  say("selection overhead: hired vs the published formulation (paper shapes, batch 1)");
  const at::TensorOptions options = at::TensorOptions(at::kFloat).device(*o.device);
  at::manual_seed(static_cast<std::int64_t>(o.seed));
  const auto in = hired_bench::SelectionInputs::paper_shapes(1, options);
  check(hired_bench::matches_reference(in, 0.2, o.drop.alpha),
        "selection: hired and the reference formulation disagree");
  hired::DropConfig exact = o.drop;
  exact.newline = hired::NewlinePolicy::none;
  exact.budget = hired::Budget::rate(0.2);
  const hired::TokenDropper dropper(exact);
  std::vector<double> ours, ours_qk, theirs;
  const auto timed = [&](const auto& run) {
    const hired::llava::Stopwatch timer;
    (void)run();
    synchronize(*o.device);
    return timer.seconds();
  };
  for (std::int64_t i = 0; i < o.warmup + std::max<std::int64_t>(o.reps, 5); ++i) {
    const double a = timed([&] { return hired_bench::hired_selection(in, dropper); });
    const double q = timed([&] {
      return hired_bench::hired_selection(in, dropper, hired_bench::Scoring::query_keys);
    });
    const double b = timed([&] { return hired_bench::reference_selection(in, 0.2, o.drop.alpha); });
    if (i >= o.warmup) ours.push_back(a), ours_qk.push_back(q), theirs.push_back(b);
  }
  return {Stat::of(ours), Stat::of(ours_qk), Stat::of(theirs)};
}

// --- output -------------------------------------------------------------------------------

std::string spread(const Stat& s, const char* format_spec = "{:.3f}") {
  return fmt::format(fmt::runtime(std::string(format_spec) + " ({}..{})"), s.median,
                     fmt::format(fmt::runtime(format_spec), s.min),
                     fmt::format(fmt::runtime(format_spec), s.max));
}

void print_table(const std::vector<Row>& rows) {
  fmt::print("{:>5} {:>6} {:>7} {:>7} {:>24} {:>22} {:>9} {:>10} {:>7} {:>7} {:>7} {:>8} {:>9}\n",
             "batch", "budget", "visual", "LLM in", "TTFT s (min..max)", "throughput tok/s",
             "decode/s", "peak MiB", "TTFT x", "thru x", "mem x", "ceiling", "achieved");
  const Row* base = nullptr;
  for (const Row& r : rows) {
    if (r.budget == 1.0) base = &r;
    if (r.out_of_memory) {
      fmt::print("{:>5} {:>5.0f}% {:>7}  out of memory\n", r.batch, r.budget * 100, "-");
      continue;
    }
    const bool ratios = base && !base->out_of_memory;
    const double ttft_x = ratios ? base->ttft.median / r.ttft.median : 0;
    fmt::print("{:>5} {:>5.0f}% {:>7} {:>7} {:>24} {:>22} {:>9.1f} {:>10.1f} {:>7} {:>7} {:>7} {:>8} {:>9}\n",
               r.batch, r.budget * 100, r.visual_tokens * r.batch, r.prompt_tokens, spread(r.ttft),
               spread(r.throughput, "{:.2f}"), r.decode_rate.median, double(r.peak_bytes) / (1 << 20),
               ratios ? fmt::format("{:.2f}", ttft_x) : "-",
               ratios ? fmt::format("{:.2f}", r.throughput.median / base->throughput.median) : "-",
               ratios && base->peak_bytes > 0 ? fmt::format("{:.2f}", double(r.peak_bytes) / double(base->peak_bytes)) : "-",
               ratios ? fmt::format("{:.2f}", r.ceiling) : "-",
               ratios ? fmt::format("{:.2f}", ttft_x / r.ceiling) : "-");
  }
}

nlohmann::json row_json(const Row& r) {
  nlohmann::json j = {{"budget_rate", r.budget}, {"batch", r.batch}};
  if (r.out_of_memory) {
    j["error"] = r.error;
    return j;
  }
  j.update({{"visual_tokens", r.visual_tokens * r.batch},
            {"llm_input_tokens", r.prompt_tokens},
            {"ttft_s", r.ttft.median},
            {"ttft_min_s", r.ttft.min},
            {"ttft_max_s", r.ttft.max},
            {"ttft_samples_s", r.ttft_samples},
            {"throughput_tok_s", r.throughput.median},
            {"decode_tok_s", r.decode_rate.median},
            {"peak_mem_bytes", r.peak_bytes},
            {"vision_s", r.vision.median},
            {"prefill_flops", r.flops},
            {"ttft_ceiling_speedup", r.ceiling},
            // For hosts that run every vision layer (transformers keeps all hidden states).
            {"ttft_ceiling_speedup_whole_tower", r.whole_tower_ceiling}});
  return j;
}

/// Sets LibTorch's CPU threads (see cpu_threads.hpp) and says how they were chosen.
std::string choose_threads(const Options& o) {
  if (o.threads) {
    at::set_num_threads(static_cast<int>(*o.threads));
    return "--threads";
  }
  if (std::getenv("OMP_NUM_THREADS")) return "OMP_NUM_THREADS";  // LibTorch has read it
  say("threads: measuring the cores' load for 1 s");
  const auto load = hired_bench::measure_cpu_load(std::chrono::seconds(1));
  if (!load) return "LibTorch's default; /proc/stat unreadable";
  at::set_num_threads(hired_bench::idle_core_threads(*load, at::get_num_threads()));
  return hired_bench::describe(*load);
}

int run(const Options& o) {
  const std::string threads_from = choose_threads(o);
  if (o.device->is_cpu()) cpu_allocator();  // before the weights, so they are counted
  const hired::llava::WeightOptions weights{*o.dtype, *o.device};
  std::optional<hired::io::Tokenizer> tokenizer;
  const hired::llava::Stopwatch load_time;
  const LlavaNextModel model = [&] {
    if (o.model_dir) {
      say(fmt::format("loading {}", o.model_dir->string()));
      if (fs::exists(*o.model_dir / "tokenizer.model"))
        tokenizer = hired::io::Tokenizer::load_dir(*o.model_dir);
      return LlavaNextModel::load(*o.model_dir, weights);
    }
    say(fmt::format("preset {} with random weights (seed {}), {} on {}", o.preset, o.seed,
                    hired::llava::dtype_name(*o.dtype), o.device->str()));
    return LlavaNextModel::random(LlavaNextConfig::preset(o.preset), o.seed, weights);
  }();
  say(fmt::format("model ready in {:.1f} s", load_time.seconds()));
  const std::filesystem::path image_path[] = {o.image};
  hired::llava::ImageInputs image = hired::llava::read_images(image_path, model.config());
  image.pixel_values = image.pixel_values.to(*o.device, *o.dtype);
  const std::vector<std::int64_t> prompt =
      tokenizer ? tokenizer->encode_prompt(hired::llava::default_prompt(1), model.config().image_token_id)
                : hired::llava::default_prompt_ids(1, model.config());

  const std::vector<Row> rows = measure_rows(model, o, image, prompt);
  std::optional<SelectionOverhead> selection;
  if (o.selection) selection = measure_selection(o);

  const auto& c = model.config();
  fmt::print("hired_bench: {} ({}), {} on {}, {} image {}, {} new tokens, greedy\n"
             "timing: {} warm-up run(s) of every row, then {} rounds each running every row once "
             "(interleaved, alternating order); medians (min..max)\n",
             o.model_dir ? o.model_dir->string() : o.preset, o.model_dir ? "weights" : "random weights",
             hired::llava::dtype_name(*o.dtype), o.device->str(), o.image.filename().string(),
             fmt::format("({} partitions)", image.num_partitions.sum().item<std::int64_t>()),
             o.max_new_tokens, o.warmup, o.reps);
  fmt::print("vision width {} ({} of {} layers run), LLM {} layers width {}, HiRED {} mode alpha {}; "
             "CPU threads: {} ({})\n\n",
             c.vision.hidden_size, c.vision_layers_run(), c.vision.num_hidden_layers,
             c.text.num_hidden_layers, c.text.hidden_size, hired::to_string(o.drop.mode), o.drop.alpha,
             at::get_num_threads(), threads_from);
  print_table(rows);
  fmt::print("\nTTFT x / thru x / mem x: against the batch's 100% row (stock LLaVA-Next). ceiling: the\n"
             "TTFT speedup the FLOPs allow (vision + projector + LLM prefill); achieved = TTFT x / ceiling.\n");
  nlohmann::json selection_json = nullptr;
  if (selection) {
    const double vision_s = rows.front().out_of_memory ? 0 : rows.front().vision.median;
    fmt::print("\nselection (paper shapes: 5 x 577 tokens, 16 heads, d 64, width 1024; median of {}):\n"
               "  hired {:.3f} ms (from q/k directly: {:.3f} ms), published formulation {:.3f} ms: "
               "{:.0f}x faster",
               std::max<std::int64_t>(o.reps, 5), selection->hired.median * 1e3,
               selection->hired_qk.median * 1e3, selection->reference.median * 1e3,
               selection->reference.median / selection->hired.median);
    if (vision_s > 0)
      fmt::print("; {:.2f}% of this model's vision tower ({:.3f} s per image batch)",
                 100 * selection->hired.median / vision_s, vision_s);
    fmt::print("\n");
    selection_json = {{"hired_s", selection->hired.median},
                      {"hired_qk_s", selection->hired_qk.median},
                      {"reference_s", selection->reference.median},
                      {"speedup", selection->reference.median / selection->hired.median},
                      {"vision_tower_s", vision_s}};
  }
  if (o.json) {
    nlohmann::json config = {{"model", o.model_dir ? o.model_dir->string() : o.preset},
                             {"random_weights", !o.model_dir}, {"device", o.device->str()},
                             {"dtype", hired::llava::dtype_name(*o.dtype)}, {"image", o.image.string()},
                             {"max_new_tokens", o.max_new_tokens}, {"warmup", o.warmup},
                             {"reps", o.reps}, {"mode", hired::to_string(o.drop.mode)},
                             {"alpha", o.drop.alpha}, {"seed", o.seed},
                             {"threads", at::get_num_threads()}, {"threads_from", threads_from}};
    nlohmann::json out = {{"config", config}, {"rows", nlohmann::json::array()},
                          {"selection", selection_json}};
    for (const Row& r : rows) out["rows"].push_back(row_json(r));
    std::ofstream(*o.json) << out.dump(2) << "\n";
    say(fmt::format("wrote {}", o.json->string()));
  }
  if (o.plot) {
    std::vector<hired_bench::PlotPoint> points;
    for (const Row& r : rows)
      if (!r.out_of_memory) points.push_back({r.budget, r.batch, r.ttft.median, r.throughput.median});
    hired_bench::write_plot(*o.plot, points);
    say(fmt::format("wrote {}", o.plot->string()));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return hired::cli::guarded_main("hired_bench", [&] { return run(parse(argc, argv)); });
}
