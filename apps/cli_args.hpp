// Command-line parsing shared by hired's tools: numbers that must parse completely, and the
// dropping flags (--mode, --budget-rate, --budget-tokens, --alpha, --newline). Torch-free.
// Every error is a hired::Error that names the flag.
#pragma once

#include "hired/config.hpp"
#include "hired/error.hpp"

#include <fmt/core.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

namespace hired::cli {

inline double parse_double(std::string_view flag, std::string_view text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  check(ec == std::errc() && end == text.data() + text.size(), "{}: '{}' is not a number", flag,
        text);
  return value;
}

inline std::int64_t parse_int(std::string_view flag, std::string_view text) {
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  check(ec == std::errc() && end == text.data() + text.size(), "{}: '{}' is not an integer", flag,
        text);
  return value;
}

/// A seed: a non-negative integer.
inline std::uint64_t parse_seed(std::string_view flag, std::string_view text) {
  const std::int64_t seed = parse_int(flag, text);
  check(seed >= 0, "{}: {} must be non-negative", flag, seed);
  return static_cast<std::uint64_t>(seed);
}

/// Calls `on_argument(arg, value)` for every argument in order; `value()` consumes and returns
/// the next argument as the flag's value (hired::Error naming the flag when there is none).
template <typename OnArgument>
void for_each_argument(int argc, char** argv, OnArgument on_argument) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    on_argument(arg, [&]() -> std::string_view {
      check(i + 1 < argc, "{}: missing value", arg);
      return argv[++i];
    });
  }
}

/// "1,2,3" -> {1, 2, 3}; empty items are errors.
template <typename Parse>
auto parse_list(std::string_view flag, std::string_view text, Parse parse) {
  std::vector<decltype(parse(flag, text))> out;
  check(!text.empty(), "{}: empty list", flag);
  for (std::size_t start = 0;;) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item = text.substr(start, comma - start);
    check(!item.empty(), "{}: empty item in '{}'", flag, text);
    out.push_back(parse(flag, item));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

/// The dropping flags: consumes argv[i] (and its value) when it is one of them.
class DropFlags {
 public:
  /// `newline_flag`: whether --newline is accepted (tools that pack; hired_select does not).
  explicit DropFlags(bool newline_flag = true) : newline_flag_(newline_flag) {}

  /// `next` returns the flag's value (and throws when it is missing).
  template <typename Next>
  bool consume(std::string_view arg, Next next) {
    if (arg == "--mode") {
      config_.mode = parse_mode(next());
    } else if (arg == "--budget-rate") {
      config_.budget = Budget::rate(parse_double(arg, next()));
      rate_given_ = true;
    } else if (arg == "--budget-tokens") {
      config_.budget = Budget::tokens(parse_int(arg, next()));
      tokens_given_ = true;
    } else if (arg == "--alpha") {
      config_.alpha = parse_double(arg, next());
    } else if (arg == "--newline" && newline_flag_) {
      config_.newline = parse_newline_policy(next());
    } else {
      return false;
    }
    any_given_ = true;
    return true;
  }

  /// Checks the combination and the values; the config to drop with.
  DropConfig config() const {
    check(!(rate_given_ && tokens_given_), "--budget-rate, --budget-tokens: give one, not both");
    config_.validate();
    return config_;
  }
  bool any_given() const { return any_given_; }
  bool budget_given() const { return rate_given_ || tokens_given_; }

 private:
  DropConfig config_;
  bool newline_flag_ = true;
  bool rate_given_ = false, tokens_given_ = false, any_given_ = false;
};

/// A tool's main: runs `body` (which returns the exit status); bad input (hired::Error, or a
/// file that cannot be read: hired::IoError) exits 2 and anything else 1, each with one line on
/// stderr that starts with the tool's name.
template <typename Body>
int guarded_main(std::string_view tool, Body&& body) {
  try {
    return body();
  } catch (const Error& e) {
    fmt::print(stderr, "{}: {}\n", tool, e.what());
    return 2;
  } catch (const IoError& e) {
    fmt::print(stderr, "{}: {}\n", tool, e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "{}: internal error: {}\n", tool, e.what());
    return 1;
  }
}

}  // namespace hired::cli
