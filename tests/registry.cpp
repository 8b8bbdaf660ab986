// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "support/task_functions.hpp"

namespace registry_test {
bool is_positive(int x) { return x > 0; }
int exported_but_unregistered(int x);  // declared first: a function with external linkage, not registered
int exported_but_unregistered(int x) { return x; }
}  // namespace registry_test
PROCPOOL_REGISTER_AS("is_positive", registry_test::is_positive);

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
  CHECK_THROWS_WITH_AS(pool.call<std::string>("echo", 5).get(),
                       doctest::Contains("called as std::string (int) but registered as std::string (std::string)"),
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
    // The function by its address (it has no dynamic symbol) and its
    // signature, the hint after it, not inside a name.
    CHECK(e.name().starts_with("the function at 0x"));
    CHECK(e.name().ends_with(" (int (int))"));
    CHECK(std::string(e.what()) == e.name() + " is not registered: add PROCPOOL_REGISTER(fn) next to its definition");
  }
}

TEST_CASE("Registry.AnUnregisteredFunctionWithADynamicSymbolIsNamed" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  // This suite links with ENABLE_EXPORTS (-rdynamic): the symbol is known.
  CHECK_THROWS_WITH_AS(pool.submit(registry_test::exported_but_unregistered, 1).get(),
                       "the function registry_test::exported_but_unregistered(int) is not registered: add "
                       "PROCPOOL_REGISTER(fn) next to its definition",
                       procpool::UnknownFunction);
}

TEST_CASE("Registry.TypedCallsConvertArguments" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  CHECK(pool.submit(tasks::echo, "a literal").get() == "a literal");
  short a = 2;
  CHECK(pool.submit(tasks::add, a, 'A').get() == 67);
}

// Text passed by name travels as std::string, the only text type a function
// can be registered with: a literal, a char pointer or a string_view works
// as it does for a typed submit (it used to fail: "called as ... (char
// const*)"), also when the call waits for room and outlives the caller's
// buffer.
TEST_CASE("Registry.TextPassedByNameTravelsAsStdString" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1, .max_pending = 1});
  CHECK(pool.call<std::string>("echo", "a literal").get() == "a literal");
  char buffer[] = "a buffer";
  const char* pointer = buffer;
  std::string_view view = "a view, cut short";
  CHECK(pool.call<std::string>("echo", buffer).get() == "a buffer");
  CHECK(pool.call<std::string>("echo", pointer).get() == "a buffer");
  CHECK(pool.call<std::string>("echo", view.substr(0, 6)).get() == "a view");
  auto words = pool.call<std::vector<std::string>>("split_words", "two words");
  CHECK(words.get() == std::vector<std::string>{"two", "words"});
  procpool::EventLoop loop;
  auto deferred = loop.run_until_complete(
      [](procpool::EventLoop& loop, procpool::ProcessPool& pool) -> procpool::Task<std::string> {
        auto held = pool.submit(tasks::sleep_ms, 100);  // the one place: the next call waits for room
        auto submitted = pool.stats().submitted;
        std::string text = "copied while it waits";
        auto f = loop.run_in_executor<std::string>(pool, "echo", text.c_str());
        if (!held.ready()) CHECK(pool.stats().submitted == submitted);  // it waits, not encoded yet
        text.assign(text.size(), 'x');                                  // the caller's buffer changes meanwhile
        co_await held;
        co_return co_await f;
      }(loop, pool));
  CHECK(deferred == "copied while it waits");
}

// A result type that converts from a pointer (bool) by name, explicitly:
// not taken for a lambda (the catch-all that refuses lambdas takes no
// explicit template arguments).
TEST_CASE("Registry.ABoolResultByNameIsNotMistakenForACallable" * doctest::timeout(30)) {
  procpool::ProcessPool pool({.workers = 1});
  procpool::EventLoop loop;
  auto positive =
      loop.run_until_complete([](procpool::EventLoop& loop, procpool::ProcessPool& pool) -> procpool::Task<bool> {
        co_return co_await loop.run_in_executor<bool>(pool, "is_positive", 3);
      }(loop, pool));
  CHECK(positive);
  CHECK(pool.call<bool>("is_positive", -1).get() == false);
}
