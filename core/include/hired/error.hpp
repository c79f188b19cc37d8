// hired's exceptions, one type per kind of failure, all with messages that name the culprit
// first ("init_cls_attn: shape [5, 16] must be [sum P, H, N + 1]"):
//   Error          a bad argument: a value, shape, dtype, device, or the contents of a file
//                  (a std::invalid_argument; Python sees a ValueError)
//   IoError        the system could not open, read, map or write a file
//   CudaError      a CUDA call failed
//   InternalError  hired's own invariant broke: a bug in hired, never the caller's fault
// The last three are std::runtime_errors.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>  // fmt::join lives here from fmt 11 on

#include <stdexcept>
#include <string>
#include <utility>

namespace hired {

class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& message) : std::invalid_argument(message) {}
};

struct IoError : std::runtime_error { using std::runtime_error::runtime_error; };
struct CudaError : std::runtime_error { using std::runtime_error::runtime_error; };
struct InternalError : std::runtime_error { using std::runtime_error::runtime_error; };

/// Throws `E` (hired::Error unless named) with a fmt-formatted message.
template <class E = Error, typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw E(fmt::format(format, std::forward<Args>(args)...));
}

/// Throws `E` (hired::Error unless named) unless `condition` holds.
template <class E = Error, typename... Args>
void check(bool condition, fmt::format_string<Args...> format, Args&&... args) {
  if (!condition) fail<E>(format, std::forward<Args>(args)...);
}

/// How messages print a shape: "[5, 16, 577]". Any range of integers (a std::vector, an
/// at::IntArrayRef).
template <class Dims>
std::string shape_text(const Dims& dims) {
  return fmt::format("[{}]", fmt::join(dims, ", "));
}

}  // namespace hired
