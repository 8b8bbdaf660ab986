// SPDX-License-Identifier: MIT
#include <doctest/doctest.h>

#include <algorithm>
#include <any>
#include <bitset>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <variant>

#include <cereal/types/memory.hpp>

#include <procpool/common/standard_exceptions.hpp>

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

// The exact type leaves no room for where it was raised, so the future
// keeps it: Python's executors attach the worker's traceback as __cause__.
TEST_CASE("Exceptions.AFutureTellsWhereItsExactTypeExceptionWasRaised" * doctest::timeout(60)) {
  auto failed = thrown("runtime_error");
  failed.wait();
  auto origin = failed.remote_origin();
  REQUIRE(origin.has_value());
  CHECK(origin->type_name() == "std::runtime_error");
  CHECK(origin->message() == "runtime");
  CHECK(origin->function() == "throw_kind");
  auto pids = pool().worker_pids();
  CHECK(std::find(pids.begin(), pids.end(), origin->pid()) != pids.end());
  CAPTURE(origin->backtrace());
  CHECK(origin->backtrace().find("invoke_registered") != std::string::npos);
  try {
    failed.get();
    FAIL("no exception");
  } catch (const std::exception& e) {
    CHECK(typeid(e) == typeid(std::runtime_error));  // still exactly the type thrown
  }
  CHECK(failed.remote_origin().has_value());  // get() takes the value, not the origin

  auto fine = thrown("none");
  CHECK(fine.get() == 0);
  CHECK_FALSE(fine.remote_origin().has_value());
  auto crashed = pool().submit(tasks::crash, std::string("segv"));
  crashed.wait();
  CHECK_FALSE(crashed.remote_origin().has_value());  // the pool's verdict: WorkerCrashed says it all

  // A map fails as its earliest failed chunk, origin and all; each of
  // return_exceptions' Results has its own call's.
  std::vector<std::string> kinds{"none", "out_of_range", "none", "domain_error"};
  auto mapped = pool().map(tasks::throw_kind, kinds, 1);
  mapped.wait();
  REQUIRE(mapped.remote_origin().has_value());
  CHECK(mapped.remote_origin()->type_name() == "std::out_of_range");
  auto each = pool().map(procpool::return_exceptions, tasks::throw_kind, kinds, 2).get();
  REQUIRE(each.size() == 4);
  CHECK_FALSE(each[0].remote_origin().has_value());
  REQUIRE(each[1].remote_origin().has_value());
  CHECK(each[1].remote_origin()->message() == "index 9 out of range");
  REQUIRE(each[3].remote_origin().has_value());
  CHECK(each[3].remote_origin()->type_name() == "std::domain_error");
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

TEST_CASE("Exceptions.UnregisteredTypeArrivesAsItsStandardBaseWithBacktrace" * doctest::timeout(60)) {
  try {
    thrown("unregistered").get();
    FAIL("no exception");
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()) == "not registered anywhere");
    auto* origin = dynamic_cast<const procpool::RemoteOrigin*>(&e);
    REQUIRE(origin);
    CHECK(origin->type_name() == "tasks::UnregisteredError");
    CHECK(origin->message() == "not registered anywhere");
    // The throw site itself may sit in a ".cold" section without a dynamic
    // symbol; the frame that called the task always has one.
    CAPTURE(origin->backtrace());
    CHECK(origin->backtrace().find("invoke_registered") != std::string::npos);
  }
}

TEST_CASE("Exceptions.ThrowingANonExceptionArrivesAsRemoteError" * doctest::timeout(60)) {
  try {
    thrown("int").get();
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "int");
    CHECK(e.message() == "42");  // the value thrown
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

// ---- issue 12: exceptions arrive as they were thrown ----

namespace exc {

struct LocalError : std::out_of_range {
  using std::out_of_range::out_of_range;
};

struct Plain {  // no std::exception, no text
  int value;
};

// Registered, with const fields and neither a default nor a string
// constructor: built by its cereal load_and_construct.
struct Frozen : std::runtime_error {
  Frozen(int code, std::string who) : std::runtime_error("frozen " + who), code(code), who(std::move(who)) {}
  const int code;
  const std::string who;
  template <class Archive>
  void save(Archive& ar) const {
    ar(code, who);
  }
  template <class Archive>
  static void load_and_construct(Archive& ar, cereal::construct<Frozen>& construct) {
    int code = 0;
    std::string who;
    ar(code, who);
    construct(code, who);
  }
};

// Its constructor decorates the text it is given: the host must not
// decorate it again when it rebuilds one from the worker's what().
struct Prefixed : std::runtime_error {
  explicit Prefixed(const std::string& m) : std::runtime_error("Prefixed: " + m) {}
};

// A result type whose load() validates what it reads.
struct Positive {
  int value = 1;
  template <class Archive>
  void save(Archive& ar) const {
    ar(value);
  }
  template <class Archive>
  void load(Archive& ar) {
    ar(value);
    if (value <= 0) throw std::invalid_argument("Positive must be > 0, got " + std::to_string(value));
  }
};

// Save only: the host could not rebuild it.
struct SaveOnly {
  int value = 0;
  template <class Archive>
  void save(Archive& ar) const {
    ar(value);
  }
};

int throw_nested(int depth) {
  try {
    throw std::invalid_argument("level 0");
  } catch (...) {
    try {
      std::throw_with_nested(tasks::QuotaExceeded("level 1", "carol", 7));
    } catch (...) {
      if (depth > 2) {
        try {
          std::throw_with_nested(LocalError("level 2"));
        } catch (...) {
          std::throw_with_nested(std::runtime_error("level 3"));
        }
      }
      std::throw_with_nested(std::runtime_error("level 2"));
    }
  }
}

int throw_local() { throw LocalError("index 4 past the end"); }
int throw_frozen() { throw Frozen(7, "dave"); }
Frozen return_frozen() { return Frozen(9, "erin"); }
Positive return_positive(int value) { return Positive{value}; }
int take_positive(Positive p) { return p.value; }
int throw_prefixed() { throw Prefixed("disk full"); }

int throw_text(std::string how) {
  if (how == "string") throw std::string("boom");
  if (how == "literal") throw "boom";
  if (how == "struct") throw Plain{7};
  return 0;
}

const std::error_category& category(const std::string& name) {
  if (name == "system") return std::system_category();
  if (name == "iostream") return std::iostream_category();
  if (name == "future") return std::future_category();
  return std::generic_category();
}
int throw_system_error(std::string category_name, int value, bool with_what) {
  std::error_code code(value, category(category_name));
  if (with_what) throw std::system_error(code, "open");
  throw std::system_error(code);
}

int throw_long(size_t bytes) { throw std::runtime_error(std::string(bytes, 'x') + "END"); }

struct Base {
  virtual ~Base() = default;
};
struct Derived : Base {};

// Makes the standard library throw as it does, so that the host can do
// the same and compare.
int standard_throw(std::string how) {
  if (how == "variant_get") return std::get<int>(std::variant<int, std::string>("text"));
  if (how == "optional_value") return std::optional<int>().value();
  if (how == "vector_at") return std::vector<int>().at(3);
  if (how == "stoi_invalid") return std::stoi("x");
  if (how == "stoi_range") return std::stoi("99999999999999");
  if (how == "any_cast") return std::any_cast<int>(std::any(std::string("text")));
  if (how == "allocate_too_much") return *std::allocator<char>().allocate(~size_t{0});
  if (how == "function_empty") return std::function<int()>()();
  if (how == "dynamic_cast") {
    Base b;
    return dynamic_cast<Derived&>(b), 0;
  }
  if (how == "typeid_null") {
    Base* p = nullptr;
    return static_cast<int>(typeid(*p).hash_code());
  }
  if (how == "weak_ptr") return *std::shared_ptr<int>(std::weak_ptr<int>());
  if (how == "string_reserve") return (std::string().reserve(~size_t{0} / 2), 0);
  if (how == "bitset_to_ulong") return static_cast<int>(std::bitset<128>().set().to_ulong());
  if (how == "thread_join") return (std::thread().join(), 0);
  if (how == "future_twice") {
    std::promise<int> p;
    (void)p.get_future();
    return p.get_future().get();
  }
  if (how == "ifstream") {
    std::ifstream in;
    in.exceptions(std::ios::failbit);
    in.open("/nonexistent/procpool");
    return 0;
  }
  if (how == "bad_exception") throw std::bad_exception();
  if (how == "exception") throw std::exception();
  if (how == "new_array") {
    volatile int n = -1;
    return *new int[n];
  }
  return 0;
}

}  // namespace exc

PROCPOOL_REGISTER_AS("exc::throw_nested", exc::throw_nested);
PROCPOOL_REGISTER_AS("exc::throw_local", exc::throw_local);
PROCPOOL_REGISTER_AS("exc::throw_frozen", exc::throw_frozen);
PROCPOOL_REGISTER_AS("exc::return_frozen", exc::return_frozen);
PROCPOOL_REGISTER_AS("exc::return_positive", exc::return_positive);
PROCPOOL_REGISTER_AS("exc::take_positive", exc::take_positive);
PROCPOOL_REGISTER_AS("exc::throw_text", exc::throw_text);
PROCPOOL_REGISTER_AS("exc::throw_system_error", exc::throw_system_error);
PROCPOOL_REGISTER_AS("exc::throw_long", exc::throw_long);
PROCPOOL_REGISTER_AS("exc::standard_throw", exc::standard_throw);
PROCPOOL_REGISTER_EXCEPTION(exc::Frozen);
PROCPOOL_REGISTER_EXCEPTION(exc::Prefixed);
PROCPOOL_REGISTER_AS("exc::throw_prefixed", exc::throw_prefixed);

namespace {
// The worker pids, for checking RemoteOrigin::pid().
bool is_worker(pid_t pid) {
  auto pids = pool().worker_pids();
  return std::find(pids.begin(), pids.end(), pid) != pids.end();
}
}  // namespace

TEST_CASE("Exceptions.NestedChainArrivesLevelByLevel" * doctest::timeout(30)) {
  // Walks the chain with std::rethrow_if_nested, as a user would.
  std::vector<std::string> seen;
  auto walk = [&](auto&& self, const std::exception& e) -> void {
    seen.push_back(e.what());
    try {
      std::rethrow_if_nested(e);
    } catch (const std::exception& inner) {
      self(self, inner);
    }
  };
  try {
    pool().submit(exc::throw_nested, 4).get();
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK(dynamic_cast<const std::nested_exception*>(&e));
    walk(walk, e);
    CHECK(seen == std::vector<std::string>{"level 3", "level 2", "level 1", "level 0"});
  }
  // Each level keeps its own type: runtime_error, LocalError (as
  // out_of_range), the registered QuotaExceeded with its fields, invalid_argument.
  try {
    pool().submit(exc::throw_nested, 4).get();
  } catch (const std::runtime_error& outer) {
    try {
      std::rethrow_if_nested(outer);
    } catch (const std::out_of_range& level2) {
      CHECK(dynamic_cast<const procpool::RemoteOrigin&>(level2).type_name() == "exc::LocalError");
      try {
        std::rethrow_if_nested(level2);
      } catch (const tasks::QuotaExceeded& level1) {
        CHECK(level1.user == "carol");
        CHECK(level1.used == 7);
        try {
          std::rethrow_if_nested(level1);
        } catch (const std::exception& level0) {
          CHECK(typeid(level0) == typeid(std::invalid_argument));
          CHECK(std::string(level0.what()) == "level 0");
        }
      }
    }
  }
}

TEST_CASE("Exceptions.UnregisteredDerivedTypeArrivesAsItsNearestStandardBase" * doctest::timeout(30)) {
  try {
    pool().submit(exc::throw_local).get();
    FAIL("no exception");
  } catch (const std::out_of_range& e) {
    CHECK(std::string(e.what()) == "index 4 past the end");
    auto& origin = dynamic_cast<const procpool::RemoteOrigin&>(e);
    CHECK(origin.type_name() == "exc::LocalError");
    CHECK(origin.function() == "exc::throw_local");
    CHECK(is_worker(origin.pid()));
  }
}

TEST_CASE("Exceptions.TypeBuiltByLoadAndConstructCanBeRegistered" * doctest::timeout(30)) {
  try {
    pool().submit(exc::throw_frozen).get();
    FAIL("no exception");
  } catch (const exc::Frozen& e) {
    CHECK(typeid(e) == typeid(exc::Frozen));
    CHECK(std::string(e.what()) == "frozen dave");
    CHECK(e.code == 7);
    CHECK(e.who == "dave");
  }
}

TEST_CASE("Exceptions.AResultTheHostCannotBuildIsRefusedAtCompileTime" * doctest::timeout(30)) {
  // Registering a function returning SaveOnly, or a std::exception, fails
  // with a static_assert (the compile-fail test `unloadable_result` checks
  // that); a type built by load_and_construct is carried.
  CHECK_FALSE(procpool::detail::kHostLoadable<exc::SaveOnly>);
  CHECK_FALSE(procpool::detail::kHostLoadable<std::runtime_error>);
  CHECK(procpool::detail::kHostLoadable<exc::Frozen>);
  pid_t worker = pool().submit(tasks::pid_of_worker).get();
  exc::Frozen f = pool().submit(exc::return_frozen).get();
  CHECK(std::string(f.what()) == "frozen erin");
  CHECK(f.code == 9);
  CHECK(is_worker(worker));
}

TEST_CASE("Exceptions.AResultWhoseLoadThrowsIsSerializationErrorAndTheWorkerStays" * doctest::timeout(30)) {
  procpool::ProcessPool one({.workers = 1});
  pid_t worker = one.worker_pids().at(0);
  try {
    one.submit(exc::return_positive, -3).get();
    FAIL("no exception");
  } catch (const procpool::SerializationError& e) {
    CHECK(e.function() == "exc::return_positive");
    CHECK(std::string(e.what()).find("Positive must be > 0, got -3") != std::string::npos);
  }
  CHECK(one.submit(exc::return_positive, 5).get().value == 5);
  CHECK(one.worker_pids().at(0) == worker);
}

TEST_CASE("Exceptions.ARegisteredTypeWhoseConstructorDecoratesItsTextKeepsWhatByteForByte" * doctest::timeout(30)) {
  procpool::ProcessPool one({.workers = 1});
  try {
    one.submit(exc::throw_prefixed).get();
    FAIL("no exception");
  } catch (const exc::Prefixed& e) {
    CHECK(std::string(e.what()) == "Prefixed: disk full");
  }
}

// An argument whose own load() throws in the worker: the call's arguments
// did not decode, which is not the function throwing (it never ran).
TEST_CASE("Exceptions.AnArgumentWhoseLoadThrowsIsSerializationErrorAndTheFunctionNeverRuns" * doctest::timeout(30)) {
  procpool::ProcessPool one({.workers = 1});
  pid_t worker = one.worker_pids().at(0);
  try {
    one.submit(exc::take_positive, exc::Positive{-3}).get();
    FAIL("no exception");
  } catch (const procpool::SerializationError& e) {
    CHECK(e.function() == "exc::take_positive");
    CHECK(std::string(e.what()).find(
              "an argument's load() threw std::invalid_argument: Positive must be > 0, got -3") != std::string::npos);
  }
  CHECK(one.submit(exc::take_positive, exc::Positive{4}).get() == 4);
  CHECK(one.worker_pids().at(0) == worker);
}

TEST_CASE("Exceptions.SystemErrorKeepsWhatValueAndCategory" * doctest::timeout(30)) {
  for (std::string name : {"generic", "system", "iostream", "future"}) {
    for (bool with_what : {true, false}) {
      CAPTURE(name);
      CAPTURE(with_what);
      std::system_error local(std::error_code(), "");
      try {
        exc::throw_system_error(name, 2, with_what);
      } catch (const std::system_error& e) {
        local = e;
      }
      try {
        pool().submit(exc::throw_system_error, name, 2, with_what).get();
        FAIL("no exception");
      } catch (const std::system_error& e) {
        CHECK(std::string(e.what()) == local.what());
        CHECK(e.code().value() == 2);
        CHECK(&e.code().category() == &exc::category(name));
      }
    }
  }
}

TEST_CASE("Exceptions.LongMessageArrivesWholeOrSaysWhereItWasCut" * doctest::timeout(30)) {
  size_t mib = size_t{1} << 20;
  CHECK_THROWS_WITH_AS(pool().submit(exc::throw_long, mib).get(), (std::string(mib, 'x') + "END").c_str(),
                       std::runtime_error);
  procpool::ProcessPool small({.workers = 1, .max_message_bytes = 64 * 1024});
  try {
    small.submit(exc::throw_long, mib).get();
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    CHECK(what.size() < 64 * 1024);
    CHECK(what.find("[procpool: cut at byte ") != std::string::npos);
    CHECK(what.find(" of " + std::to_string(mib + 3) + " to fit max_message_bytes]") != std::string::npos);
  }
}

TEST_CASE("Exceptions.ThrownStringsKeepTheirTextAndEveryRemoteErrorSaysWhere" * doctest::timeout(30)) {
  for (std::string how : {"string", "literal"}) {
    try {
      pool().submit(exc::throw_text, how).get();
      FAIL("no exception");
    } catch (const procpool::RemoteError& e) {
      CHECK(e.message() == "boom");
      CHECK(e.function() == "exc::throw_text");
      CHECK(is_worker(e.pid()));
    }
  }
  try {
    thrown("int").get();
  } catch (const procpool::RemoteError& e) {
    CHECK(e.function() == "throw_kind");
    CHECK(is_worker(e.pid()));
  }
}

TEST_CASE("Exceptions.AnObjectThrownWithNoTextSaysSoInsteadOfAnEmptyMessage" * doctest::timeout(30)) {
  try {
    pool().submit(exc::throw_text, std::string("struct")).get();
    FAIL("no exception");
  } catch (const procpool::RemoteError& e) {
    CHECK(e.type_name() == "exc::Plain");
    CHECK(e.message().empty());
    CHECK(std::string(e.what()) == "exc::Plain (no message)");
  }
}

TEST_CASE("Exceptions.StandardMessagesSurviveByteForByte" * doctest::timeout(30)) {
  for (std::string how :
       {"variant_get", "optional_value", "vector_at", "stoi_invalid", "stoi_range", "any_cast", "allocate_too_much",
        "function_empty", "dynamic_cast", "typeid_null", "weak_ptr", "string_reserve", "bitset_to_ulong", "thread_join",
        "future_twice", "ifstream", "bad_exception", "exception", "new_array"}) {
    CAPTURE(how);
    std::exception_ptr local;
    try {
      exc::standard_throw(how);
    } catch (...) {
      local = std::current_exception();
    }
    REQUIRE(local);
    std::exception_ptr remote;
    try {
      pool().submit(exc::standard_throw, how).get();
    } catch (...) {
      remote = std::current_exception();
    }
    REQUIRE(remote);
    try {
      std::rethrow_exception(local);
    } catch (const std::exception& expected) {
      try {
        std::rethrow_exception(remote);
      } catch (const std::exception& got) {
        CHECK(std::string(got.what()) == expected.what());
        // Caught as the type the library threw (or its public base, for
        // the library's private ones such as std::__ios_failure).
        const std::type_info& base = procpool::detail::nearest_standard_base(expected);
        CHECK(procpool::detail::nearest_standard_base(got) == base);
        if (!dynamic_cast<const procpool::RemoteOrigin*>(&got)) CHECK(typeid(got) == typeid(expected));
      }
    }
  }
}
