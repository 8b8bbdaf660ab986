// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include "support/task_functions.hpp"

namespace {
int triple(int x) { return 3 * x; }
int not_registered(int x) { return x; }
int another_add(int a, int b) { return a + b; }
}  // namespace

TEST_CASE("Registry.UnknownNameNamesItAndCloseMatches" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  auto f = pool.call<int>("ad", 1, 2);
  try {
    f.get();
    FAIL("expected UnknownFunction");
  } catch (const procpool::UnknownFunction& e) {
    CHECK(e.name() == "ad");
    CHECK(std::string(e.what()).find("'ad'") != std::string::npos);
    CHECK(std::string(e.what()).find("did you mean 'add'") != std::string::npos);
  }
  CHECK(pool.call<int>("add", 1, 2).get() == 3);  // the pool carries on
}

TEST_CASE("Registry.WrongArgumentTypesNameBothSignatures" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_WITH_AS(pool.call<int>("add", 1L, 2).get(),
                       "'add': called as int (long, int) but registered as int (int, int)",
                       procpool::SerializationError);
  CHECK_THROWS_WITH_AS(pool.call<int>("add", 1).get(), "'add': called as int (int) but registered as int (int, int)",
                       procpool::SerializationError);
}

TEST_CASE("Registry.WrongResultTypeIsRefused" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_AS(pool.call<long>("add", 1, 2).get(), procpool::SerializationError);
  CHECK_THROWS_WITH_AS(
      pool.call<std::string>("echo", "text").get(),
      doctest::Contains("called as std::string (char const*) but registered as std::string (std::string)"),
      procpool::SerializationError);
  CHECK(pool.call<std::string>("echo", std::string("text")).get() == "text");
}

TEST_CASE("Registry.DuplicateNameIsRefusedAtRegistration" * doctest::timeout(30)) {
  CHECK_THROWS_WITH_AS(procpool::register_function("add", &another_add),
                       doctest::Contains("already registered as 'add'"), procpool::Error);
}

TEST_CASE("Registry.RunTimeRegistrationBeforeThePoolStartsWorks" * doctest::timeout(30)) {
  procpool::register_function("triple", &triple);
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.call<int>("triple", 5).get() == 15);
  CHECK(pool.submit(triple, 7).get() == 21);
}

TEST_CASE("Registry.RegistrationWhileAPoolRunsIsRefused" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK_THROWS_WITH_AS(procpool::register_function("late", &not_registered),
                       doctest::Contains("while a ProcessPool is running"), procpool::Error);
}

TEST_CASE("Registry.UnregisteredFunctionPointerFailsWithAHint" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  try {
    pool.submit(not_registered, 1).get();
    FAIL("expected UnknownFunction");
  } catch (const procpool::UnknownFunction& e) {
    // The function by its address, the hint after it, not inside a name.
    CHECK(e.name().starts_with("the function at 0x"));
    CHECK(std::string(e.what()) == e.name() + " is not registered: add PROCPOOL_REGISTER(fn) next to its definition");
  }
}

TEST_CASE("Registry.TypedCallsConvertArguments" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.submit(tasks::echo, "a literal").get() == "a literal");
  short a = 2;
  CHECK(pool.submit(tasks::add, a, 'A').get() == 67);
}
