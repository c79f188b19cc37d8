// The index of a sharded checkpoint, `model.safetensors.index.json`: which shard file holds each
// tensor. Only `weight_map` is read; `metadata` (total_size) is not needed to load.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace hired::io {

/// One `weight_map` entry: a tensor and the shard file that holds it.
struct WeightIndexEntry {
  std::string tensor;
  std::string file;  // a bare file name, in the index's directory
};

/// The entries of an index document, in `weight_map`'s (sorted) order. hired::Error naming
/// `label` unless the document is an object with a non-empty `weight_map` object whose values
/// are file names in the checkpoint directory (no path separator or NUL, not "." or "..": a
/// path elsewhere is a corrupt or hostile index).
std::vector<WeightIndexEntry> parse_weight_index(const nlohmann::json& index,
                                                 std::string_view label);

/// read_json + parse_weight_index; messages name `path`.
std::vector<WeightIndexEntry> read_weight_index(const std::filesystem::path& path);

}  // namespace hired::io
