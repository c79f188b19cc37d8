// Weights: a llava-hf checkpoint directory read lazily through memory-mapped safetensors files,
// or seeded random tensors for a config alone.
#include "hired/llava/weights.hpp"

#include "hired/error.hpp"
#include "hired/io/safetensors.hpp"
#include "hired/io/weight_index.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string_view>

namespace hired::llava {

at::ScalarType parse_dtype(std::string_view what, std::string_view name) {
  if (name == "fp32" || name == "float32") return at::kFloat;
  if (name == "fp16" || name == "float16") return at::kHalf;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  fail("{}: '{}' is not fp32, fp16 or bf16", what, name);
}

at::Device parse_device(std::string_view what, std::string_view name) {
  check(name == "cpu" || name == "cuda", "{}: '{}' is not cpu or cuda", what, name);
  check(name == "cpu" || at::hasCUDA(), "{} {}: this LibTorch build sees no CUDA device", what, name);
  return name == "cpu" ? at::Device(at::kCPU) : at::Device(at::kCUDA);
}

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    default: return c10::toString(dtype);
  }
}

using io::Dtype;
using io::SafeTensors;
using io::TensorView;

namespace {

namespace fs = std::filesystem;

constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

/// The llava-hf name of a stored tensor. transformers 5 saves LlavaNextForConditionalGeneration
/// as model.{language_model,vision_tower,multi_modal_projector,image_newline}.* + lm_head.*, and
/// the vision tower without CLIPVisionModel's "vision_model." level; the hub files (and the
/// modules here) use language_model.{model,lm_head}.*, vision_tower.vision_model.*, ...
std::string llava_hf_name(std::string_view stored) {
  std::string name(stored);
  if (starts_with(name, "model.language_model.")) {
    name = "language_model.model." + name.substr(std::strlen("model.language_model."));
  } else if (starts_with(name, "lm_head.")) {
    name = "language_model." + name;
  } else if (starts_with(name, "model.vision_tower.") || starts_with(name, "model.multi_modal_projector.") ||
             name == "model.image_newline") {
    name = name.substr(std::strlen("model."));
  }
  if (starts_with(name, "vision_tower.") && !starts_with(name, "vision_tower.vision_model.")) {
    name = "vision_tower.vision_model." + name.substr(std::strlen("vision_tower."));
  }
  return name;
}

std::optional<at::ScalarType> float_scalar_type(Dtype dtype) {
  switch (dtype) {
    case Dtype::F32: return at::kFloat;
    case Dtype::F16: return at::kHalf;
    case Dtype::BF16: return at::kBFloat16;
    case Dtype::F64: return at::kDouble;
    default: return std::nullopt;
  }
}

void check_options(const WeightOptions& options) {
  check(at::isFloatingType(options.dtype), "weights: dtype {} is not a floating-point type",
        c10::toString(options.dtype));
  // A device this build or machine lacks fails here, once, rather than as a c10::Error from
  // the first take().
  try {
    (void)at::empty({0}, at::TensorOptions().dtype(options.dtype).device(options.device));
  } catch (const c10::Error& e) {
    fail("weights: device {} is not usable: {}", options.device.str(), e.what_without_backtrace());
  }
}

// FNV-1a over (seed, name, shape), then splitmix64's finaliser: a stable 64-bit generator seed
// per tensor, independent of the order in which tensors are taken.
std::uint64_t tensor_seed(std::uint64_t seed, std::string_view name, at::IntArrayRef shape) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto mix = [&h](const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < size; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  };
  mix(&seed, sizeof seed);
  mix(name.data(), name.size());
  const char separator = '\0';
  mix(&separator, 1);
  for (const std::int64_t dim : shape) mix(&dim, sizeof dim);
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

at::Generator generator_for(const at::Device& device, std::uint64_t seed) {
  if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
  at::Generator generator =
      at::globalContext().getAcceleratorHooksInterface(device.type()).getNewGenerator(device.index());
  generator.set_current_seed(seed);
  return generator;
}

/// Lets the kernel drop the pages of a tensor already copied out of a mapping: they are file
/// pages (reclaimable), but they would count in the process's resident set next to the copy.
void release_pages(std::span<const std::byte> bytes) {
  static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<std::uintptr_t>(bytes.data());
  const std::uintptr_t first = (begin + page - 1) / page * page;  // whole pages inside only
  const std::uintptr_t last = (begin + bytes.size()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

struct Weights::Impl {
  WeightOptions options;
  std::string origin;
  std::optional<std::uint64_t> seed;  // set for random weights
  double stddev = 0.02;

  struct Entry {
    std::size_t shard;
    std::string stored_name;
  };
  std::vector<SafeTensors> shards;  // memory-mapped; tensor bytes are read on take()
  std::map<std::string, Entry> entries;  // by llava-hf name
  std::set<std::string> taken;           // llava-hf names take() has returned

  void add(std::size_t shard, const std::string& stored_name) {
    const std::string name = llava_hf_name(stored_name);
    const auto [it, inserted] = entries.emplace(name, Entry{shard, stored_name});
    check(inserted, "{}: tensors '{}' ({}) and '{}' ({}) are both '{}' in llava-hf naming",
          origin, it->second.stored_name, shards[it->second.shard].source(), stored_name,
          shards[shard].source(), name);
  }
};

Weights::Weights(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Weights Weights::open(const fs::path& dir, WeightOptions options) {
  check_options(options);
  std::error_code error;
  check<IoError>(fs::is_directory(dir, error), "{}: checkpoint directory not found", dir.string());
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->origin = dir.string();

  const fs::path single = dir / kSingleFile;
  const fs::path index_path = dir / kIndexFile;
  if (fs::exists(single, error)) {
    impl->shards.push_back(SafeTensors::map_file(single.string()));
    for (const std::string& name : impl->shards[0].names()) impl->add(0, name);
    return Weights(std::move(impl));
  }
  check<IoError>(fs::exists(index_path, error), "{}: neither {} nor {} is there", dir.string(), kSingleFile,
        kIndexFile);

  const std::string index_name = index_path.string();
  std::map<std::string, std::size_t> shard_of_file;
  for (const auto& [tensor, file] : io::read_weight_index(index_path)) {
    auto [it, inserted] = shard_of_file.emplace(file, impl->shards.size());
    if (inserted) {
      const fs::path shard_path = dir / file;
      check<IoError>(fs::exists(shard_path, error), "{}: shard '{}' (listed for tensor '{}') not found: {}",
            index_name, file, tensor, shard_path.string());
      impl->shards.push_back(SafeTensors::map_file(shard_path.string()));
    }
    const SafeTensors& shard = impl->shards[it->second];
    check(shard.contains(tensor), "{}: tensor '{}' listed in {} is absent from the shard",
          shard.source(), tensor, index_name);
    impl->add(it->second, tensor);
  }
  return Weights(std::move(impl));
}

Weights Weights::random(std::uint64_t seed, WeightOptions options, double stddev) {
  check_options(options);
  check(stddev >= 0, "stddev: {} must be non-negative", stddev);
  auto impl = std::make_shared<Impl>();
  impl->options = options;
  impl->origin = fmt::format("random(seed={})", seed);
  impl->seed = seed;
  impl->stddev = stddev;
  return Weights(std::move(impl));
}

at::Tensor Weights::take(const std::string& name, at::IntArrayRef shape, Init init) {
  Impl& impl = *impl_;
  const auto tensor_options = at::TensorOptions().dtype(impl.options.dtype).device(impl.options.device);
  for (const std::int64_t dim : shape) {
    check(dim >= 0, "{}: tensor '{}': negative dim in the expected shape {}", impl.origin, name,
          shape_text(shape));
  }

  if (impl.seed) {
    switch (init) {
      case Init::ones: return at::ones(shape, tensor_options);
      case Init::zeros: return at::zeros(shape, tensor_options);
      case Init::normal: break;
    }
    at::Tensor out = at::empty(shape, tensor_options);
    // Drawn on the target device in the target dtype: no float32 staging copy of a 7B model.
    out.normal_(0.0, impl.stddev, generator_for(impl.options.device, tensor_seed(*impl.seed, name, shape)));
    return out;
  }

  const auto it = impl.entries.find(name);
  check(it != impl.entries.end(), "{}: no tensor '{}' in the checkpoint ({} tensors in {} file{})",
        impl.origin, name, impl.entries.size(), impl.shards.size(), impl.shards.size() == 1 ? "" : "s");
  const TensorView& view = impl.shards[it->second.shard].at(it->second.stored_name);
  const std::string stored =
      it->second.stored_name == name ? "" : fmt::format(" (stored as '{}')", it->second.stored_name);
  const std::optional<at::ScalarType> stored_type = float_scalar_type(view.dtype());
  check(stored_type.has_value(), "{}: tensor '{}'{}: dtype {} is not floating point (F32, F16, BF16, F64)",
        view.source(), name, stored, dtype_name(view.dtype()));
  check(at::IntArrayRef(view.shape()) == shape, "{}: tensor '{}'{}: shape {} in the file, the config needs {}",
        view.source(), name, stored, shape_text(view.shape()), shape_text(shape));

  // One copy out of the mapping (the data section gives no alignment guarantee), then the
  // conversion; the mapped pages are dropped so the file is never resident twice.
  at::Tensor host = at::empty(shape, at::TensorOptions().dtype(*stored_type));
  if (!view.bytes().empty()) std::memcpy(host.data_ptr(), view.bytes().data(), view.bytes().size());
  release_pages(view.bytes());
  impl.taken.insert(name);
  return host.to(tensor_options);
}

bool Weights::contains(const std::string& name) const {
  return impl_->seed.has_value() || impl_->entries.count(name) != 0;
}

bool Weights::in_checkpoint(const std::string& name) const { return impl_->entries.count(name) != 0; }

std::vector<std::string> Weights::untaken() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : impl_->entries)
    if (impl_->taken.count(name) == 0) out.push_back(name);
  return out;
}

const WeightOptions& Weights::options() const { return impl_->options; }

std::string Weights::origin() const { return impl_->origin; }

}  // namespace hired::llava
