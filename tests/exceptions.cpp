// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <system_error>

#include "support/task_functions.hpp"

namespace {
procpool::ProcessPool& pool() {
  static procpool::ProcessPool p({.workers = 2});
  return p;
}
auto thrown(const std::string& kind) { return pool().submit(tasks::throw_kind, kind); }
}  // namespace

TEST_CASE("Exceptions.StandardTypesArriveAsThemselves" * doctest::timeout(60)) {
  CHECK_THROWS_WITH_AS(thrown("invalid_argument").get(), "bad argument", std::invalid_argument);
  CHECK_THROWS_WITH_AS(thrown("out_of_range").get(), "index 9 out of range", std::out_of_range);
  CHECK_THROWS_WITH_AS(thrown("logic_error").get(), "logic", std::logic_error);
  CHECK_THROWS_WITH_AS(thrown("domain_error").get(), "domain", std::domain_error);
  CHECK_THROWS_WITH_AS(thrown("length_error").get(), "length", std::length_error);
  CHECK_THROWS_WITH_AS(thrown("runtime_error").get(), "runtime", std::runtime_error);
  CHECK_THROWS_WITH_AS(thrown("range_error").get(), "range", std::range_error);
  CHECK_THROWS_WITH_AS(thrown("overflow_error").get(), "overflow", std::overflow_error);
  CHECK_THROWS_WITH_AS(thrown("underflow_error").get(), "underflow", std::underflow_error);
  CHECK_THROWS_AS(thrown("bad_alloc").get(), std::bad_alloc);
  CHECK_THROWS_AS(thrown("bad_cast").get(), std::bad_cast);
}

TEST_CASE("Exceptions.ExactTypeIsKeptNotJustABase" * doctest::timeout(60)) {
  try {
    thrown("out_of_range").get();
    FAIL("no exception");
  } catch (const std::exception& e) {
    CHECK(typeid(e) == typeid(std::out_of_range));
  }
}

TEST_CASE("Exceptions.LibraryThrowsArriveToo" * doctest::timeout(60)) {
  CHECK_THROWS_AS(thrown("vector_at").get(), std::out_of_range);
}

TEST_CASE("Exceptions.SystemErrorKeepsItsCode" * doctest::timeout(60)) {
  try {
    thrown("system_error").get();
    FAIL("no exception");
  } catch (const std::system_error& e) {
    CHECK(e.code() == std::errc::no_such_file_or_directory);
    CHECK(std::string(e.what()).find("opening config") != std::string::npos);
  }
}

TEST_CASE("Exceptions.RegisteredUserTypeArrivesWithItsFields" * doctest::timeout(60)) {
  try {
    thrown("quota").get();
    FAIL("no exception");
  } catch (const tasks::QuotaExceeded& e) {
    CHECK(std::string(e.what()) == "quota exceeded");
    CHECK(e.user == "alice");
    CHECK(e.used == 42);
  }
}

TEST_CASE("Exceptions.UnregisteredTypeArrivesAsRemoteErrorWithBacktrace" * doctest::timeout(60)) {
  try {
    thrown("unregistered").get();
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "tasks::UnregisteredError");
    CHECK(e.message() == "not registered anywhere");
    CHECK(std::string(e.what()) == "tasks::UnregisteredError: not registered anywhere");
    // The throw site itself may sit in a ".cold" section without a dynamic
    // symbol; the frame that called the task always has one.
    CAPTURE(e.backtrace());
    CHECK(e.backtrace().find("invoke_registered") != std::string::npos);
  }
}

TEST_CASE("Exceptions.ThrowingANonExceptionArrivesAsRemoteError" * doctest::timeout(60)) {
  try {
    thrown("int").get();
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "int");
    CHECK(e.message().empty());
    CHECK_FALSE(e.backtrace().empty());
  }
}

TEST_CASE("Exceptions.UnencodableFieldsStillArriveAsRemoteError" * doctest::timeout(60)) {
  try {
    pool().submit(tasks::throw_broken_fields).get();
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "tasks::BrokenFields");
    CHECK(e.message() == "broken fields");
  }
}

TEST_CASE("Exceptions.PoolErrorsDeriveFromProcpoolError" * doctest::timeout(60)) {
  CHECK_THROWS_AS(pool().call<int>("nope").get(), procpool::Error);
  CHECK_THROWS_AS(thrown("int").get(), procpool::Error);
  CHECK_THROWS_AS(thrown("int").get(), std::runtime_error);
}
