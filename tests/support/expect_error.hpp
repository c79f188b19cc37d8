// expect_error: the one assertion every rejection test uses.
#pragma once

#include "hired/error.hpp"

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <initializer_list>
#include <string>

namespace hired_test {

/// Expects `body` to throw `E` (hired::Error, a bad argument, unless named: hired::IoError,
/// ...) whose message contains every one of `parts` (the argument it names, and whatever else
/// identifies the problem).
template <class E = hired::Error>
void expect_error(const std::function<void()>& body, std::initializer_list<std::string> parts) {
  try {
    body();
    ADD_FAILURE() << "expected an exception, nothing was thrown";
  } catch (const E& e) {
    for (const std::string& part : parts)
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos)
          << "message '" << e.what() << "' does not contain '" << part << "'";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected another kind of exception than: " << e.what();
  }
}

template <class E = hired::Error>
void expect_error(const std::function<void()>& body, const std::string& part) {
  expect_error<E>(body, {part});
}

}  // namespace hired_test
