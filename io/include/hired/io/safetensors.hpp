// Safetensors reader and writer without torch: a JSON header (nlohmann-json) over raw
// little-endian tensor bytes. Every byte range is validated before it is touched.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join lives here from fmt 11 on

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "hired/error.hpp"
#include "hired/io/file.hpp"
#include "hired/half.hpp"

#if defined(__unix__) || defined(__APPLE__)
#define HIRED_SAFETENSORS_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace hired::io {

// The format stores little-endian data and the conversions below memcpy it as-is.
static_assert(std::endian::native == std::endian::little,
              "hired safetensors support assumes a little-endian host");

/// Element types of the safetensors spec with whole-byte elements. Files holding any of them
/// load; only F64/F32/F16/BF16 read as floats and I64/I32/I16/I8/U8 as integers.
enum class Dtype {
  F64, F32, F16, BF16,
  I64, I32, I16, I8,
  U64, U32, U16, U8,
  BOOL,
  F8_E4M3, F8_E5M2, F8_E8M0,
};

/// The spec's name for a dtype ("F32", "BF16", ...).
constexpr std::string_view dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::F64: return "F64";
    case Dtype::F32: return "F32";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::I64: return "I64";
    case Dtype::I32: return "I32";
    case Dtype::I16: return "I16";
    case Dtype::I8: return "I8";
    case Dtype::U64: return "U64";
    case Dtype::U32: return "U32";
    case Dtype::U16: return "U16";
    case Dtype::U8: return "U8";
    case Dtype::BOOL: return "BOOL";
    case Dtype::F8_E4M3: return "F8_E4M3";
    case Dtype::F8_E5M2: return "F8_E5M2";
    case Dtype::F8_E8M0: return "F8_E8M0";
  }
  return "?";
}

/// Bytes per element.
constexpr std::size_t dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::F64: case Dtype::I64: case Dtype::U64: return 8;
    case Dtype::F32: case Dtype::I32: case Dtype::U32: return 4;
    case Dtype::F16: case Dtype::BF16: case Dtype::I16: case Dtype::U16: return 2;
    case Dtype::I8: case Dtype::U8: case Dtype::BOOL:
    case Dtype::F8_E4M3: case Dtype::F8_E5M2: case Dtype::F8_E8M0: return 1;
  }
  return 0;
}

/// Inverse of dtype_name; nullopt for names this library does not know.
constexpr std::optional<Dtype> dtype_from_name(std::string_view name) {
  constexpr Dtype all[] = {Dtype::F64,  Dtype::F32,     Dtype::F16,     Dtype::BF16,
                           Dtype::I64,  Dtype::I32,     Dtype::I16,     Dtype::I8,
                           Dtype::U64,  Dtype::U32,     Dtype::U16,     Dtype::U8,
                           Dtype::BOOL, Dtype::F8_E4M3, Dtype::F8_E5M2, Dtype::F8_E8M0};
  for (Dtype dtype : all) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

/// One tensor of a loaded file: metadata plus a view of its bytes. Copies share (and keep
/// alive) the file's buffer or mapping, so a view may outlive the SafeTensors it came from.
class TensorView {
 public:
  const std::string& name() const { return name_; }
  Dtype dtype() const { return dtype_; }
  const std::vector<std::int64_t>& shape() const { return shape_; }
  std::int64_t numel() const { return numel_; }
  /// The raw little-endian bytes, numel() * dtype_size(dtype()) of them; not necessarily aligned.
  std::span<const std::byte> bytes() const { return bytes_; }
  /// The file (or in-memory name) the tensor came from, for messages.
  const std::string& source() const { return source_; }

  /// Values as floats, from F32, F16, BF16 or F64 (narrowed) data.
  std::vector<float> to_float() const {
    std::vector<float> out(static_cast<std::size_t>(numel_));
    switch (dtype_) {
      case Dtype::F32: copy_raw(out); break;
      case Dtype::F64: convert<double>(out, [](double v) { return static_cast<float>(v); }); break;
      case Dtype::F16: convert<std::uint16_t>(out, half_to_float); break;
      case Dtype::BF16: convert<std::uint16_t>(out, bf16_to_float); break;
      default: reject("to_float", "F64, F32, F16, BF16");
    }
    return out;
  }

  /// Values as int64, from I64, I32, I16, I8 or U8 data.
  std::vector<std::int64_t> to_int64() const {
    std::vector<std::int64_t> out(static_cast<std::size_t>(numel_));
    const auto widen = [](auto v) { return static_cast<std::int64_t>(v); };
    switch (dtype_) {
      case Dtype::I64: copy_raw(out); break;
      case Dtype::I32: convert<std::int32_t>(out, widen); break;
      case Dtype::I16: convert<std::int16_t>(out, widen); break;
      case Dtype::I8: convert<std::int8_t>(out, widen); break;
      case Dtype::U8: convert<std::uint8_t>(out, widen); break;
      default: reject("to_int64", "I64, I32, I16, I8, U8");
    }
    return out;
  }

 private:
  friend class SafeTensors;

  template <typename Out>
  void copy_raw(std::vector<Out>& out) const {
    if (!bytes_.empty()) std::memcpy(out.data(), bytes_.data(), bytes_.size());
  }

  // memcpy per element: the data section gives no alignment guarantee.
  template <typename Stored, typename Out, typename Fn>
  void convert(std::vector<Out>& out, Fn fn) const {
    for (std::size_t i = 0; i < out.size(); ++i) {
      Stored value;
      std::memcpy(&value, bytes_.data() + i * sizeof(Stored), sizeof(Stored));
      out[i] = static_cast<Out>(fn(value));
    }
  }

  [[noreturn]] void reject(std::string_view reader, std::string_view accepted) const {
    fail("{}: tensor '{}': unsupported dtype {} for {}() (it reads {})", source_, name_,
         dtype_name(dtype_), reader, accepted);
  }

  std::string name_;
  Dtype dtype_ = Dtype::F32;
  std::vector<std::int64_t> shape_;
  std::int64_t numel_ = 0;
  std::span<const std::byte> bytes_;
  std::string source_;
  std::shared_ptr<const void> owner_;  // the file's bytes: a vector or a memory mapping
};

namespace detail {

/// Headers beyond this are certainly corrupt (real ones are kilobytes); refusing them avoids
/// huge allocations from a damaged length prefix.
inline constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

inline std::string json_type_name(const nlohmann::json& value) {
  if (value.is_number_integer()) return "integer";
  if (value.is_number_float()) return "float";
  return value.type_name();
}

/// A non-negative JSON integer, or an error naming `what`.
inline std::uint64_t json_to_u64(const nlohmann::json& value, const std::string& where,
                                 std::string_view what) {
  check(value.is_number_integer(), "{}: {} must be an integer, got {} {}", where, what,
        json_type_name(value), value.dump());
  check(value.is_number_unsigned(), "{}: {} must be non-negative, got {}", where, what,
        value.dump());
  return value.get<std::uint64_t>();
}

inline const nlohmann::json& json_field(const nlohmann::json& entry, const std::string& where,
                                        const char* field) {
  const auto it = entry.find(field);
  check(it != entry.end(), "{}: missing field '{}'", where, field);
  return *it;
}


/// Element count of `shape` (1 for a scalar), or an error naming `where` for a negative dim or
/// a product beyond int64. A zero dim gives 0 even if the other dims alone would overflow.
inline std::int64_t checked_numel(const std::vector<std::int64_t>& shape,
                                  const std::string& where) {
  for (const std::int64_t dim : shape) {
    check(dim >= 0, "{}: negative dim in shape {}", where, shape_text(shape));
  }
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  std::int64_t numel = 1;
  for (const std::int64_t dim : shape) {
    check(numel <= std::numeric_limits<std::int64_t>::max() / dim,
          "{}: shape {} has more elements than fit in int64", where, shape_text(shape));
    numel *= dim;
  }
  return numel;
}

}  // namespace detail

/// A parsed safetensors file held in memory.
class SafeTensors {
 public:
  /// Reads and validates the whole file at `path`; messages name `path`.
  static SafeTensors load(const std::string& path) {
    const std::string text = read_file(path, path);
    return from_bytes(std::vector<std::uint8_t>(text.begin(), text.end()), path);
  }

#ifdef HIRED_SAFETENSORS_MMAP
  /// Like load(), but maps the file read-only (POSIX mmap) instead of reading it: only the
  /// header is touched here, tensor bytes are paged in when read, so a multi-GB checkpoint shard
  /// costs no heap memory. The mapping lives as long as this object or any TensorView of it.
  static SafeTensors map_file(const std::string& path) {
    check_file(path, path);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    check<IoError>(fd >= 0, "{}: cannot open file for reading ({})", path,
          std::generic_category().message(errno));
    struct ::stat info {};
    if (::fstat(fd, &info) != 0) {
      const int saved = errno;
      ::close(fd);
      fail<IoError>("{}: cannot determine the file size ({})", path, std::generic_category().message(saved));
    }
    const auto size = static_cast<std::size_t>(info.st_size);
    void* address = nullptr;
    if (size > 0) {  // mmap rejects length 0; an empty file fails the length-prefix check below
      address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (address == MAP_FAILED) {
        const int saved = errno;
        ::close(fd);
        fail<IoError>("{}: cannot map {} bytes ({})", path, size, std::generic_category().message(saved));
      }
    }
    ::close(fd);  // the mapping stays valid without the descriptor
    std::shared_ptr<const void> mapping(address, [size](const void* p) {
      if (p != nullptr) ::munmap(const_cast<void*>(p), size);
    });
    SafeTensors result;
    result.source_ = path;
    result.file_ = std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(address), size);
    result.owner_ = std::move(mapping);
    result.parse();
    return result;
  }
#endif

  /// Validates an in-memory file; messages name `name_for_messages`.
  static SafeTensors from_bytes(std::vector<std::uint8_t> bytes, std::string name_for_messages) {
    SafeTensors result;
    result.source_ = std::move(name_for_messages);
    auto buffer = std::make_shared<const std::vector<std::uint8_t>>(std::move(bytes));
    result.file_ = std::span<const std::uint8_t>(buffer->data(), buffer->size());
    result.owner_ = std::move(buffer);
    result.parse();
    return result;
  }

  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }

  /// Tensor names in sorted order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& entry : tensors_) out.push_back(entry.first);
    return out;
  }

  std::size_t size() const { return tensors_.size(); }

  /// The tensor called `name`; the error for a missing one lists (up to 20 of) those present.
  const TensorView& at(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it != tensors_.end()) return it->second;
    constexpr std::size_t kListed = 20;
    std::vector<std::string> listed;
    for (const auto& entry : tensors_) {
      if (listed.size() == kListed) break;
      listed.push_back("'" + entry.first + "'");
    }
    std::string present = tensors_.empty() ? "none" : fmt::format("{}", fmt::join(listed, ", "));
    if (tensors_.size() > kListed) present += fmt::format(" and {} more", tensors_.size() - kListed);
    fail("{}: no tensor '{}' (present: {})", source_, name, present);
  }

  /// The "__metadata__" string map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// The file (or in-memory name) used in messages.
  const std::string& source() const { return source_; }

 private:
  SafeTensors() = default;

  void parse() {
    const std::span<const std::uint8_t> file = file_;
    check(file.size() >= 8, "{}: file is {} bytes, shorter than the 8-byte header length prefix",
          source_, file.size());
    std::uint64_t header_length = 0;
    std::memcpy(&header_length, file.data(), 8);
    check(header_length <= detail::kMaxHeaderBytes,
          "{}: header length {} exceeds the {}-byte limit (corrupt length prefix?)", source_,
          header_length, detail::kMaxHeaderBytes);
    check(header_length <= file.size() - 8,
          "{}: header length {} runs past the end of the {}-byte file", source_, header_length,
          file.size());
    const nlohmann::json header = parse_json(
        std::string_view(reinterpret_cast<const char*>(file.data() + 8),
                         static_cast<std::size_t>(header_length)),
        fmt::format("{}: header", source_));
    check(header.is_object(), "{}: header must be a JSON object, got {}", source_,
          detail::json_type_name(header));

    const std::size_t data_begin = 8 + static_cast<std::size_t>(header_length);
    const std::uint64_t data_size = file.size() - data_begin;
    for (const auto& [key, entry] : header.items()) {
      if (key == "__metadata__") {
        parse_metadata(entry);
      } else {
        parse_tensor(key, entry, data_begin, data_size);
      }
    }
    check_no_overlap(data_begin);
  }

  // Two tensors sharing bytes would alias: writing one would change the other, and no writer
  // of the format produces it. Empty tensors occupy nothing.
  void check_no_overlap(std::size_t data_begin) const {
    struct Range {
      std::size_t begin, end;
      const std::string* name;
    };
    std::vector<Range> ranges;
    for (const auto& [name, view] : tensors_) {
      if (view.bytes_.empty()) continue;
      const auto begin = static_cast<std::size_t>(
          reinterpret_cast<const std::uint8_t*>(view.bytes_.data()) - file_.data() - data_begin);
      ranges.push_back({begin, begin + view.bytes_.size(), &name});
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (std::size_t i = 1; i < ranges.size(); ++i) {
      const Range& a = ranges[i - 1];
      const Range& b = ranges[i];
      check(b.begin >= a.end,
            "{}: tensors '{}' (data offsets [{}, {})) and '{}' (data offsets [{}, {})) overlap",
            source_, *a.name, a.begin, a.end, *b.name, b.begin, b.end);
    }
  }

  void parse_metadata(const nlohmann::json& entry) {
    check(entry.is_object(), "{}: field '__metadata__' must be an object, got {}", source_,
          detail::json_type_name(entry));
    for (const auto& [key, value] : entry.items()) {
      check(value.is_string(), "{}: field '__metadata__': value of '{}' must be a string, got {}",
            source_, key, detail::json_type_name(value));
      metadata_[key] = value.get<std::string>();
    }
  }

  void parse_tensor(const std::string& name, const nlohmann::json& entry, std::size_t data_begin,
                    std::uint64_t data_size) {
    const std::string where = fmt::format("{}: tensor '{}'", source_, name);
    check(entry.is_object(), "{}: entry must be an object, got {}", where,
          detail::json_type_name(entry));

    const nlohmann::json& dtype_json = detail::json_field(entry, where, "dtype");
    check(dtype_json.is_string(), "{}: field 'dtype' must be a string, got {}", where,
          detail::json_type_name(dtype_json));
    const auto dtype_text = dtype_json.get<std::string>();
    const std::optional<Dtype> dtype = dtype_from_name(dtype_text);
    check(dtype.has_value(), "{}: unknown dtype '{}'", where, dtype_text);

    const nlohmann::json& shape_json = detail::json_field(entry, where, "shape");
    check(shape_json.is_array(), "{}: field 'shape' must be an array, got {}", where,
          detail::json_type_name(shape_json));
    std::vector<std::int64_t> shape;
    for (std::size_t i = 0; i < shape_json.size(); ++i) {
      const nlohmann::json& dim = shape_json[i];
      // Checked here rather than by json_to_u64 so a negative dim gets its own message.
      check(dim.is_number_integer(), "{}: shape[{}] must be an integer, got {} {}", where, i,
            detail::json_type_name(dim), dim.dump());
      check(dim.is_number_unsigned(), "{}: negative dim {} in shape {}", where, dim.dump(),
            shape_json.dump());
      check(dim.get<std::uint64_t>() <=
                static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()),
            "{}: shape[{}] = {} does not fit in int64", where, i, dim.dump());
      shape.push_back(dim.get<std::int64_t>());
    }
    const std::int64_t numel = detail::checked_numel(shape, where);

    const nlohmann::json& offsets_json = detail::json_field(entry, where, "data_offsets");
    check(offsets_json.is_array() && offsets_json.size() == 2,
          "{}: field 'data_offsets' must be an array of two integers, got {}", where,
          offsets_json.dump());
    const std::uint64_t begin = detail::json_to_u64(offsets_json[0], where, "data_offsets[0]");
    const std::uint64_t end = detail::json_to_u64(offsets_json[1], where, "data_offsets[1]");
    check(begin <= end, "{}: data offsets [{}, {}) are decreasing", where, begin, end);
    check(end <= data_size, "{}: data offsets [{}, {}) outside the {}-byte data section", where,
          begin, end, data_size);

    const std::uint64_t element_size = dtype_size(*dtype);
    const auto count = static_cast<std::uint64_t>(numel);
    check(count <= std::numeric_limits<std::uint64_t>::max() / element_size,
          "{}: shape {} of {} needs more bytes than fit in 64 bits", where,
          shape_text(shape), dtype_text);
    check(count * element_size == end - begin,
          "{}: shape {} of {} needs {} bytes but data offsets [{}, {}) span {}", where,
          shape_text(shape), dtype_text, count * element_size, begin, end, end - begin);

    TensorView view;
    view.name_ = name;
    view.dtype_ = *dtype;
    view.shape_ = std::move(shape);
    view.numel_ = numel;
    view.bytes_ = std::span<const std::byte>(
        reinterpret_cast<const std::byte*>(file_.data() + data_begin + begin),
        static_cast<std::size_t>(end - begin));
    view.source_ = source_;
    view.owner_ = owner_;
    tensors_.emplace(name, std::move(view));
  }

  std::string source_;
  std::span<const std::uint8_t> file_;  // the whole file, owned by owner_
  std::shared_ptr<const void> owner_;   // a std::vector or a memory mapping
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

/// One tensor to write: raw little-endian bytes, numel(shape) * dtype_size(dtype) of them.
struct TensorData {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> bytes;
};

/// TensorData from typed values (e.g. float for F32, std::uint16_t fp16 bits for F16); checks
/// that sizeof(T) matches the dtype and the value count matches the shape.
template <typename T>
TensorData make_tensor_data(std::string name, Dtype dtype, std::vector<std::int64_t> shape,
                            const std::vector<T>& values) {
  check(sizeof(T) == dtype_size(dtype), "tensor '{}': {}-byte values given for {} ({} bytes)",
        name, sizeof(T), dtype_name(dtype), dtype_size(dtype));
  const std::int64_t numel = detail::checked_numel(shape, fmt::format("tensor '{}'", name));
  check(static_cast<std::int64_t>(values.size()) == numel,
        "tensor '{}': {} values given for shape {}", name, values.size(),
        shape_text(shape));
  TensorData out{std::move(name), dtype, std::move(shape), {}};
  out.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.bytes.data(), values.data(), out.bytes.size());
  return out;
}

namespace detail {

inline std::vector<std::uint8_t> serialize_checked(
    const std::vector<TensorData>& tensors, const std::map<std::string, std::string>& metadata,
    std::string_view label) {
  // Largest elements first, then by name (as the reference implementation does): with the
  // header padded to 8 bytes every tensor then starts aligned to its element size.
  std::vector<const TensorData*> order;
  for (const TensorData& tensor : tensors) order.push_back(&tensor);
  std::sort(order.begin(), order.end(), [](const TensorData* a, const TensorData* b) {
    const std::size_t size_a = dtype_size(a->dtype), size_b = dtype_size(b->dtype);
    return size_a != size_b ? size_a > size_b : a->name < b->name;
  });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const TensorData* tensor : order) {
    const std::string where = fmt::format("{}: tensor '{}'", label, tensor->name);
    check(tensor->name != "__metadata__", "{}: name is reserved for metadata", where);
    check(!header.contains(tensor->name), "{}: name appears twice", where);
    const auto numel = static_cast<std::uint64_t>(checked_numel(tensor->shape, where));
    // Division avoids overflowing numel * size for absurd shapes.
    check(tensor->bytes.size() % dtype_size(tensor->dtype) == 0 &&
              tensor->bytes.size() / dtype_size(tensor->dtype) == numel,
          "{}: {} bytes given but shape {} needs {} elements of {} ({} bytes each)", where,
          tensor->bytes.size(), shape_text(tensor->shape), numel, dtype_name(tensor->dtype),
          dtype_size(tensor->dtype));
    header[tensor->name] = {{"dtype", dtype_name(tensor->dtype)},
                            {"shape", tensor->shape},
                            {"data_offsets", {offset, offset + tensor->bytes.size()}}};
    offset += tensor->bytes.size();
  }

  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  const std::uint64_t header_length = text.size();
  std::vector<std::uint8_t> out(8 + text.size() + offset);
  std::memcpy(out.data(), &header_length, 8);
  std::memcpy(out.data() + 8, text.data(), text.size());
  std::size_t cursor = 8 + text.size();
  for (const TensorData* tensor : order) {
    if (!tensor->bytes.empty()) {
      std::memcpy(out.data() + cursor, tensor->bytes.data(), tensor->bytes.size());
    }
    cursor += tensor->bytes.size();
  }
  return out;
}

}  // namespace detail

/// A complete safetensors file in memory (header padded with spaces to a multiple of 8).
inline std::vector<std::uint8_t> serialize_safetensors(
    const std::vector<TensorData>& tensors,
    const std::map<std::string, std::string>& metadata = {}) {
  return detail::serialize_checked(tensors, metadata, "serialize_safetensors");
}

/// Writes `tensors` (and optional metadata) to `path` as a safetensors file.
inline void write_safetensors(const std::string& path, const std::vector<TensorData>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::vector<std::uint8_t> bytes = detail::serialize_checked(tensors, metadata, path);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  check<IoError>(out.is_open(), "{}: cannot open file for writing", path);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  check(!out.fail(), "{}: writing {} bytes failed", path, bytes.size());
}

}  // namespace hired::io
