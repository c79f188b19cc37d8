#include "hired/io/file.hpp"

#include "hired/error.hpp"

#include <fstream>
#include <iterator>

namespace hired::io {

void check_file(const std::filesystem::path& path, std::string_view label) {
  std::error_code ignored;
  const auto status = std::filesystem::status(path, ignored);
  check<IoError>(std::filesystem::exists(status), "{}: no such file", label);
  check<IoError>(!std::filesystem::is_directory(status), "{}: is a directory, not a file", label);
}

std::string read_file(const std::filesystem::path& path, std::string_view label) {
  check_file(path, label);
  std::ifstream in(path, std::ios::binary);
  check<IoError>(in.good(), "{}: cannot open the file for reading", label);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  check<IoError>(!in.bad(), "{}: read error", label);
  return bytes;
}

nlohmann::json parse_json(std::string_view text, std::string_view label) {
  // The callback sees each array or object as it opens, before anything deeper is built.
  const auto limit_depth = [label](int depth, nlohmann::json::parse_event_t event,
                                   const nlohmann::json&) {
    const bool opens = event == nlohmann::json::parse_event_t::object_start ||
                       event == nlohmann::json::parse_event_t::array_start;
    check(!opens || depth < kMaxJsonDepth, "{}: JSON nested deeper than {} levels", label,
          kMaxJsonDepth);
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), limit_depth);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", label, e.what());
  }
}

nlohmann::json read_json(const std::filesystem::path& path, std::string_view label) {
  return parse_json(read_file(path, label), label);
}

}  // namespace hired::io
