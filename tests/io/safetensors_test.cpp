// Safetensors writer/reader round trips and one test per kind of corrupt file.
#include "hired/io/safetensors.hpp"

#include "support/expect_error.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "hired/half.hpp"

namespace hired::io {
namespace {

using hired_test::expect_error;

using Bytes = std::vector<std::uint8_t>;

Bytes with_header(const std::string& json, std::size_t data_bytes) {
  Bytes out(8 + json.size() + data_bytes, 0);
  const std::uint64_t length = json.size();
  std::memcpy(out.data(), &length, 8);
  std::memcpy(out.data() + 8, json.data(), json.size());
  return out;
}

void expect_rejected(const std::string& json, std::size_t data_bytes,
                     std::initializer_list<std::string> parts) {
  expect_error([&] { SafeTensors::from_bytes(with_header(json, data_bytes), "x.safetensors"); },
               parts);
}

// A valid file with one 2x2 F32 tensor; corrupting its header text gives the rejection cases.
std::string valid_header() {
  return R"({"init_cls_attn":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
}

TEST(SafeTensors, ValidHeaderParses) {
  const SafeTensors file = SafeTensors::from_bytes(with_header(valid_header(), 16), "x");
  EXPECT_EQ(file.at("init_cls_attn").numel(), 4);
}

TEST(SafeTensors, RoundTripsEveryDtype) {
  std::vector<TensorData> tensors;
  tensors.push_back(make_tensor_data("f64", Dtype::F64, {3}, std::vector<double>{1.5, -2, 1e300}));
  tensors.push_back(make_tensor_data("f32", Dtype::F32, {2, 2}, std::vector<float>{1, 2, 3, -4}));
  tensors.push_back(make_tensor_data("f16", Dtype::F16, {2},
                                     std::vector<std::uint16_t>{float_to_half(1.0f),
                                                                float_to_half(-2.5f)}));
  tensors.push_back(make_tensor_data("bf16", Dtype::BF16, {2},
                                     std::vector<std::uint16_t>{float_to_bf16(1.0f),
                                                                float_to_bf16(-2.5f)}));
  tensors.push_back(make_tensor_data("i64", Dtype::I64, {2},
                                     std::vector<std::int64_t>{-(std::int64_t{1} << 40), 7}));
  tensors.push_back(make_tensor_data("i32", Dtype::I32, {2}, std::vector<std::int32_t>{-5, 9}));
  tensors.push_back(make_tensor_data("i16", Dtype::I16, {1}, std::vector<std::int16_t>{-300}));
  tensors.push_back(make_tensor_data("i8", Dtype::I8, {2}, std::vector<std::int8_t>{-128, 127}));
  tensors.push_back(make_tensor_data("u8", Dtype::U8, {3}, std::vector<std::uint8_t>{0, 200, 255}));
  tensors.push_back(make_tensor_data("u16", Dtype::U16, {1}, std::vector<std::uint16_t>{65535}));
  tensors.push_back(make_tensor_data("u32", Dtype::U32, {1}, std::vector<std::uint32_t>{7}));
  tensors.push_back(make_tensor_data("u64", Dtype::U64, {1}, std::vector<std::uint64_t>{7}));
  tensors.push_back(make_tensor_data("bool", Dtype::BOOL, {2}, std::vector<std::uint8_t>{1, 0}));
  tensors.push_back(make_tensor_data("f8", Dtype::F8_E4M3, {1}, std::vector<std::uint8_t>{0x38}));
  tensors.push_back(make_tensor_data("f8b", Dtype::F8_E5M2, {1}, std::vector<std::uint8_t>{0x3c}));
  tensors.push_back(make_tensor_data("f8c", Dtype::F8_E8M0, {1}, std::vector<std::uint8_t>{127}));
  tensors.push_back(make_tensor_data("scalar", Dtype::F32, {}, std::vector<float>{42}));
  tensors.push_back(make_tensor_data("empty", Dtype::F32, {0, 5}, std::vector<float>{}));

  const Bytes bytes = serialize_safetensors(tensors, {{"format", "pt"}});
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(header_length % 8, 0u);

  const SafeTensors file = SafeTensors::from_bytes(bytes, "mem");
  EXPECT_EQ(file.size(), tensors.size());
  EXPECT_EQ(file.metadata().at("format"), "pt");
  for (const TensorData& tensor : tensors) {
    SCOPED_TRACE(tensor.name);
    const TensorView& view = file.at(tensor.name);
    EXPECT_EQ(view.dtype(), tensor.dtype);
    EXPECT_EQ(view.shape(), tensor.shape);
    ASSERT_EQ(view.bytes().size(), tensor.bytes.size());
    if (!tensor.bytes.empty()) {
      EXPECT_EQ(std::memcmp(view.bytes().data(), tensor.bytes.data(), tensor.bytes.size()), 0);
    }
  }

  EXPECT_EQ(file.at("f64").to_float(), (std::vector<float>{1.5f, -2.0f, static_cast<float>(1e300)}));
  EXPECT_EQ(file.at("f32").to_float(), (std::vector<float>{1, 2, 3, -4}));
  EXPECT_EQ(file.at("f16").to_float(), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(file.at("bf16").to_float(), (std::vector<float>{1.0f, -2.5f}));
  EXPECT_EQ(file.at("scalar").numel(), 1);
  EXPECT_EQ(file.at("scalar").to_float(), (std::vector<float>{42}));
  EXPECT_EQ(file.at("empty").numel(), 0);
  EXPECT_TRUE(file.at("empty").to_float().empty());
  EXPECT_EQ(file.at("i64").to_int64(), (std::vector<std::int64_t>{-(std::int64_t{1} << 40), 7}));
  EXPECT_EQ(file.at("i32").to_int64(), (std::vector<std::int64_t>{-5, 9}));
  EXPECT_EQ(file.at("i16").to_int64(), (std::vector<std::int64_t>{-300}));
  EXPECT_EQ(file.at("i8").to_int64(), (std::vector<std::int64_t>{-128, 127}));
  EXPECT_EQ(file.at("u8").to_int64(), (std::vector<std::int64_t>{0, 200, 255}));
}

TEST(SafeTensors, TensorsAreAlignedToTheirElementSize) {
  const Bytes bytes = serialize_safetensors({
      make_tensor_data("a_byte", Dtype::U8, {3}, std::vector<std::uint8_t>{1, 2, 3}),
      make_tensor_data("b_half", Dtype::F16, {1}, std::vector<std::uint16_t>{0x3c00}),
      make_tensor_data("c_double", Dtype::F64, {1}, std::vector<double>{1}),
  });
  const SafeTensors file = SafeTensors::from_bytes(bytes, "mem");
  for (const std::string& name : file.names()) {
    const TensorView& view = file.at(name);
    const auto offset = static_cast<std::size_t>(
        reinterpret_cast<const std::uint8_t*>(view.bytes().data()) - bytes.data());
    EXPECT_EQ(offset % dtype_size(view.dtype()), 0u) << name;
  }
}

TEST(SafeTensors, NamesAreSortedAndContainsWorks) {
  const SafeTensors file = SafeTensors::from_bytes(
      serialize_safetensors({make_tensor_data("b", Dtype::F32, {1}, std::vector<float>{1}),
                             make_tensor_data("a", Dtype::F32, {1}, std::vector<float>{2})}),
      "mem");
  EXPECT_EQ(file.names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(file.contains("a"));
  EXPECT_FALSE(file.contains("c"));
  EXPECT_TRUE(file.metadata().empty());
}

TEST(SafeTensors, FileRoundTripAndViewsOutliveTheFile) {
  const std::string path =
      (std::filesystem::temp_directory_path() / "hired_safetensors_test.safetensors").string();
  write_safetensors(path, {make_tensor_data("w", Dtype::F32, {2}, std::vector<float>{3, 4})},
                    {{"source", "test"}});
  // The view keeps the buffer alive after the temporary SafeTensors is gone.
  const TensorView view = SafeTensors::load(path).at("w");
  EXPECT_EQ(view.to_float(), (std::vector<float>{3, 4}));
  EXPECT_EQ(view.source(), path);
  EXPECT_EQ(SafeTensors::load(path).metadata().at("source"), "test");
  std::filesystem::remove(path);
}

TEST(SafeTensors, UnalignedDataIsReadCorrectly) {
  // One leading U8 byte pushes the F32 tensor to an odd offset.
  const std::string json =
      R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  Bytes bytes = with_header(json, 9);
  const float values[2] = {1.25f, -7.0f};
  std::memcpy(bytes.data() + 8 + json.size() + 1, values, sizeof(values));
  EXPECT_EQ(SafeTensors::from_bytes(bytes, "x").at("w").to_float(),
            (std::vector<float>{1.25f, -7.0f}));
}

TEST(SafeTensors, AdjacentAndEmptyTensorsDoNotOverlap) {
  // b starts where a ends; the empty tensors occupy no bytes wherever they point.
  const std::string json =
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
      R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]},)"
      R"("e":{"dtype":"F32","shape":[0],"data_offsets":[1,1]},)"
      R"("f":{"dtype":"F32","shape":[0,3],"data_offsets":[1,1]}})";
  const SafeTensors file = SafeTensors::from_bytes(with_header(json, 4), "x");
  EXPECT_EQ(file.size(), 4u);
}

TEST(SafeTensorsErrors, MissingTensorListsThePresentOnes) {
  const SafeTensors file = SafeTensors::from_bytes(with_header(valid_header(), 16), "x.st");
  expect_error([&] { file.at("vision_tower"); }, {"x.st", "'vision_tower'", "'init_cls_attn'"});
}

TEST(SafeTensorsErrors, MissingFile) {
  expect_error<hired::IoError>([] { SafeTensors::load("/nonexistent/dir/w.safetensors"); },
               {"/nonexistent/dir/w.safetensors", "no such file"});
}

TEST(SafeTensorsErrors, DirectoryInsteadOfFile) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  expect_error<hired::IoError>([&] { SafeTensors::load(dir); }, {dir, "directory"});
}

TEST(SafeTensorsErrors, ShorterThanLengthPrefix) {
  Bytes bytes = with_header(valid_header(), 16);
  bytes.resize(5);
  expect_error([&] { SafeTensors::from_bytes(bytes, "x.safetensors"); },
               {"x.safetensors", "5 bytes", "8-byte"});
}

TEST(SafeTensorsErrors, TruncatedDataSection) {
  Bytes bytes = with_header(valid_header(), 16);
  bytes.resize(bytes.size() - 1);
  expect_error([&] { SafeTensors::from_bytes(bytes, "x.safetensors"); },
               {"x.safetensors", "'init_cls_attn'", "[0, 16)", "15-byte data section"});
}

TEST(SafeTensorsErrors, HeaderLengthPastEnd) {
  Bytes bytes = with_header(valid_header(), 16);
  const std::uint64_t length = bytes.size();  // 8 more than the bytes after the prefix
  std::memcpy(bytes.data(), &length, 8);
  expect_error([&] { SafeTensors::from_bytes(bytes, "x.safetensors"); },
               {"x.safetensors", "header length", "past the end"});
}

TEST(SafeTensorsErrors, HeaderLengthAbsurd) {
  Bytes bytes = with_header(valid_header(), 16);
  const std::uint64_t length = std::numeric_limits<std::uint64_t>::max();
  std::memcpy(bytes.data(), &length, 8);
  expect_error([&] { SafeTensors::from_bytes(bytes, "x.safetensors"); },
               {"x.safetensors", "header length", "limit"});
}

TEST(SafeTensorsErrors, BadJson) {
  std::string json = valid_header();
  json.pop_back();  // drop the closing brace
  expect_rejected(json, 16, {"x.safetensors", "not valid JSON"});
}

TEST(SafeTensorsErrors, HeaderNotAnObject) {
  expect_rejected("[1, 2, 3]", 0, {"x.safetensors", "must be a JSON object", "array"});
}

TEST(SafeTensorsErrors, EntryNotAnObject) {
  expect_rejected(R"({"init_cls_attn": 5})", 0, {"'init_cls_attn'", "must be an object"});
}

TEST(SafeTensorsErrors, UnknownDtype) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F9","shape":[2,2],"data_offsets":[0,16]}})", 16,
                  {"x.safetensors", "'init_cls_attn'", "unknown dtype 'F9'"});
}

TEST(SafeTensorsErrors, DtypeWrongType) {
  expect_rejected(R"({"init_cls_attn":{"dtype":32,"shape":[2,2],"data_offsets":[0,16]}})", 16,
                  {"'init_cls_attn'", "'dtype'", "string"});
}

TEST(SafeTensorsErrors, MissingField) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","data_offsets":[0,16]}})", 16,
                  {"x.safetensors", "'init_cls_attn'", "missing field 'shape'"});
  expect_rejected(R"({"init_cls_attn":{"shape":[2,2],"data_offsets":[0,16]}})", 16,
                  {"'init_cls_attn'", "missing field 'dtype'"});
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2]}})", 16,
                  {"'init_cls_attn'", "missing field 'data_offsets'"});
}

TEST(SafeTensorsErrors, ShapeWrongType) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":"2x2","data_offsets":[0,16]}})", 16,
                  {"'init_cls_attn'", "'shape'", "array"});
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2.0],"data_offsets":[0,16]}})",
                  16, {"'init_cls_attn'", "shape[1]", "integer"});
}

TEST(SafeTensorsErrors, NegativeDim) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,-2],"data_offsets":[0,16]}})", 16,
                  {"x.safetensors", "'init_cls_attn'", "negative dim -2"});
}

TEST(SafeTensorsErrors, ShapeProductOverflow) {
  expect_rejected(
      R"({"init_cls_attn":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})",
      16, {"'init_cls_attn'", "more elements than fit in int64"});
  expect_rejected(
      R"({"init_cls_attn":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,16]}})",
      16, {"'init_cls_attn'", "does not fit in int64"});
  // numel fits in int64 but the byte count does not fit in 64 bits.
  expect_rejected(
      R"({"init_cls_attn":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,16]}})",
      16, {"'init_cls_attn'", "more bytes than fit"});
}

TEST(SafeTensorsErrors, BadDataOffsets) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}})", 16,
                  {"'init_cls_attn'", "'data_offsets'", "two integers"});
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})", 16,
                  {"'init_cls_attn'", "decreasing"});
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2],"data_offsets":[-1,15]}})", 16,
                  {"'init_cls_attn'", "data_offsets[0]", "non-negative"});
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,2],"data_offsets":[0,"16"]}})",
                  16, {"'init_cls_attn'", "data_offsets[1]", "integer"});
}

TEST(SafeTensorsErrors, OffsetsPastData) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[1024],"data_offsets":[0,4096]}})",
                  1000, {"x.safetensors: tensor 'init_cls_attn': data offsets [0, 4096) outside "
                         "the 1000-byte data section"});
  // Offsets near 2^64 must not wrap around the bounds check.
  expect_rejected(R"({"init_cls_attn":{"dtype":"U8","shape":[1],)"
                  R"("data_offsets":[18446744073709551615,18446744073709551615]}})",
                  16, {"'init_cls_attn'", "outside"});
}

TEST(SafeTensorsErrors, OverlappingTensorsAreRefusedByName) {
  // b's bytes [2, 4) are the last two of a's [0, 4).
  expect_rejected(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                  4, {"x.safetensors", "tensors 'a' (data offsets [0, 4))",
                      "'b' (data offsets [2, 4)) overlap"});
  // The same range twice, and one tensor inside another listed before it.
  expect_rejected(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                  R"("v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                  8, {"'v'", "'w'", "overlap"});
  expect_rejected(R"({"z":{"dtype":"U8","shape":[1],"data_offsets":[5,6]},)"
                  R"("big":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},)"
                  R"("y":{"dtype":"U8","shape":[1],"data_offsets":[8,9]}})",
                  9, {"'big' (data offsets [0, 8))", "'z' (data offsets [5, 6)) overlap"});
}

TEST(SafeTensorsErrors, MappedFilesAreRefusedAlike) {
  // map_file (the runtime's checkpoint loader) parses what from_bytes parses.
  const std::string path =
      (std::filesystem::temp_directory_path() / "hired_safetensors_overlap.safetensors").string();
  const Bytes bytes = with_header(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                  R"("b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                                  4);
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  expect_error([&] { SafeTensors::map_file(path); }, {path, "'a'", "'b'", "overlap"});
  std::filesystem::remove(path);
}

TEST(SafeTensorsErrors, HeaderNestedTooDeep) {
  // What reads or prints a parsed document recurses once per level: 64 levels at most.
  const auto nested = [](int depth) {
    return R"({"__metadata__":)" + std::string(static_cast<std::size_t>(depth - 1), '[') + "0" +
           std::string(static_cast<std::size_t>(depth - 1), ']') + "}";
  };
  expect_rejected(nested(64), 0, {"x.safetensors", "'__metadata__'", "object"});
  expect_rejected(nested(65), 0, {"x.safetensors: header", "nested deeper than 64 levels"});
  expect_rejected(nested(100000), 0, {"x.safetensors: header", "nested deeper than 64 levels"});
}

TEST(SafeTensorsErrors, ShapeBytesMismatch) {
  expect_rejected(R"({"init_cls_attn":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16,
                  {"x.safetensors", "'init_cls_attn'", "[2, 3]", "needs 24 bytes", "span 16"});
}

TEST(SafeTensorsErrors, MetadataNotStrings) {
  expect_rejected(R"({"__metadata__":{"format":1}})", 0, {"'__metadata__'", "'format'", "string"});
  expect_rejected(R"({"__metadata__":[]})", 0, {"'__metadata__'", "object"});
}

TEST(SafeTensorsErrors, ToFloatRejectsIntegers) {
  const SafeTensors file = SafeTensors::from_bytes(
      serialize_safetensors({make_tensor_data("ids", Dtype::I64, {1}, std::vector<std::int64_t>{1}),
                             make_tensor_data("f8", Dtype::F8_E4M3, {1},
                                              std::vector<std::uint8_t>{0})}),
      "m.safetensors");
  expect_error([&] { file.at("ids").to_float(); },
               {"m.safetensors", "'ids'", "unsupported dtype I64", "to_float"});
  expect_error([&] { file.at("f8").to_float(); },
               {"m.safetensors", "'f8'", "unsupported dtype F8_E4M3"});
  expect_error([&] { file.at("f8").to_int64(); }, {"'f8'", "unsupported dtype F8_E4M3"});
}

TEST(SafeTensorsErrors, ToInt64RejectsFloats) {
  const SafeTensors file = SafeTensors::from_bytes(
      serialize_safetensors({make_tensor_data("w", Dtype::BF16, {1}, std::vector<std::uint16_t>{0})}),
      "m.safetensors");
  expect_error([&] { file.at("w").to_int64(); },
               {"m.safetensors", "'w'", "unsupported dtype BF16", "to_int64"});
}

TEST(SafeTensorsWriterErrors, RejectsInconsistentEntries) {
  expect_error([] { serialize_safetensors({{"w", Dtype::F32, {2, 3}, Bytes(16)}}); },
               {"'w'", "16 bytes given", "[2, 3]"});
  expect_error([] { serialize_safetensors({{"w", Dtype::F32, {-1}, Bytes(0)}}); },
               {"'w'", "negative dim"});
  expect_error([] { serialize_safetensors({{"w", Dtype::F32, {0, -1}, Bytes(0)}}); },
               {"'w'", "negative dim", "[0, -1]"});
  expect_error(
      [] {
        serialize_safetensors({{"w", Dtype::U8, {1}, Bytes(1)}, {"w", Dtype::U8, {1}, Bytes(1)}});
      },
      {"'w'", "twice"});
  expect_error([] { serialize_safetensors({{"__metadata__", Dtype::U8, {1}, Bytes(1)}}); },
               {"'__metadata__'", "reserved"});
  expect_error([] { make_tensor_data("w", Dtype::F16, {1}, std::vector<float>{1}); },
               {"'w'", "F16"});
  expect_error<hired::IoError>([] { write_safetensors("/nonexistent/dir/out.safetensors", {}); },
               {"/nonexistent/dir/out.safetensors", "cannot open"});
}

}  // namespace
}  // namespace hired::io
