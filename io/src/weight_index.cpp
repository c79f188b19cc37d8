#include "hired/io/weight_index.hpp"

#include "hired/error.hpp"
#include "hired/io/file.hpp"

namespace hired::io {

std::vector<WeightIndexEntry> parse_weight_index(const nlohmann::json& index,
                                                 std::string_view label) {
  check(index.is_object(), "{}: not a JSON object", label);
  const auto map_it = index.find("weight_map");
  check(map_it != index.end() && map_it->is_object(), "{}: no 'weight_map' object", label);
  std::vector<WeightIndexEntry> entries;
  for (const auto& [tensor, file_json] : map_it->items()) {
    check(file_json.is_string(), "{}: weight_map['{}'] is not a file name: {}", label, tensor,
          file_json.dump());
    auto file = file_json.get<std::string>();
    const std::filesystem::path relative(file);
    check(!file.empty() && file.find('\0') == std::string::npos && relative.is_relative() &&
              relative.filename() == relative && file != "." && file != "..",
          "{}: weight_map['{}'] is not a file name in the checkpoint directory: '{}'", label,
          tensor, file);
    entries.push_back({tensor, std::move(file)});
  }
  check(!entries.empty(), "{}: weight_map lists no tensors", label);
  return entries;
}

std::vector<WeightIndexEntry> read_weight_index(const std::filesystem::path& path) {
  const std::string label = path.string();
  return parse_weight_index(read_json(path, label), label);
}

}  // namespace hired::io
