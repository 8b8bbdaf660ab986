// SPDX-License-Identifier: MIT
#include "call_book.hpp"

#include <chrono>
#include <csignal>
#include <stdexcept>
#include <thread>
#include <typeinfo>

#include <procpool/common/type_name.hpp>
#include <procpool/procpool.hpp>

#include "run_ledger.hpp"

namespace soak {

CallBook::CallBook(size_t capacity, Violations& violations)
    : capacity_(capacity), violations_(violations), kinds_(new Kind[capacity]()), outcomes_of_(new Outcome[capacity]()),
      settles_(new std::atomic<uint8_t>[capacity]()), cancel_said_(new std::atomic<uint8_t>[capacity]()) {}

void CallBook::open_epoch(uint32_t begin, uint32_t end, bool cancel_futures) {
  begin_ = begin;
  end_.store(end);
  cancel_futures_ = cancel_futures;
  next_.store(begin);
}

std::optional<uint32_t> CallBook::claim(uint32_t count) noexcept {
  if (stopped()) return std::nullopt;
  uint64_t id = next_.fetch_add(count, std::memory_order_relaxed);
  if (id + count > end_.load(std::memory_order_relaxed)) return std::nullopt;
  return static_cast<uint32_t>(id);
}

uint64_t CallBook::claimed() const noexcept {
  return std::min<uint64_t>(next_.load(std::memory_order_relaxed), end_.load(std::memory_order_relaxed));
}

Outcome CallBook::classify(uint32_t id, const std::exception_ptr& error, std::string& text) const {
  try {
    std::rethrow_exception(error);
  } catch (const procpool::TaskTimeout& e) {
    text = e.what();
    return Outcome::timed_out;
  } catch (const procpool::TaskCancelled& e) {
    text = e.what();
    return Outcome::cancelled;
  } catch (const procpool::WorkerCrashed& e) {
    text = e.what();
    if (typeid(e) != typeid(procpool::WorkerCrashed)) return Outcome::wrong;
    if (e.signal() == SIGSEGV) return Outcome::crashed_segv;
    if (e.signal() == SIGABRT) return Outcome::crashed_abort;
    if (e.signal() == SIGKILL) return Outcome::crashed_kill;
    if (e.signal() == 0 && e.exit_code() == 3) return Outcome::crashed_exit3;
    return Outcome::wrong;
  } catch (const procpool::ProtocolError& e) {
    text = e.what();
    return Outcome::protocol_error;
  } catch (const procpool::Error& e) {
    text = procpool::detail::demangle(typeid(e).name()) + ": " + e.what();
    return Outcome::wrong;
  } catch (const std::runtime_error& e) {
    text = e.what();
    bool exact = typeid(e) == typeid(std::runtime_error) && text == "soak call " + std::to_string(id);
    if (!exact) text = "a " + procpool::detail::demangle(typeid(e).name()) + ": " + text;
    return exact ? Outcome::raised : Outcome::wrong;
  } catch (const std::exception& e) {
    text = procpool::detail::demangle(typeid(e).name()) + ": " + e.what();
    return Outcome::wrong;
  } catch (...) {
    text = "a non-standard exception";
    return Outcome::wrong;
  }
}

bool CallBook::acceptable(uint32_t id, Outcome outcome) const noexcept {
  Kind kind = kinds_[id];
  if (outcome == expected_outcome(kind)) return true;
  if (outcome == Outcome::value && (kind == Kind::cancel_queued || kind == Kind::cancel_running)) return true;
  // Shut down with cancel_futures: a call no worker began may be cancelled
  // (check_epoch then requires that it never ran).
  return outcome == Outcome::cancelled && cancel_futures_;
}

void CallBook::settle(uint32_t id, const std::exception_ptr& error, bool value_ok, const std::string& value_note) {
  std::string text;
  Outcome outcome = error ? classify(id, error, text) : (value_ok ? Outcome::value : Outcome::wrong);
  if (!error && !value_ok) text = "a wrong value" + (value_note.empty() ? "" : ": " + value_note);
  uint8_t before = settles_[id].fetch_add(1, std::memory_order_acq_rel);
  if (before != 0) {
    violations_.add("call " + std::to_string(id) + " (" + to_string(kinds_[id]) + ") settled twice");
    return;
  }
  outcomes_of_[id] = outcome;
  outcomes_[static_cast<size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  if (!acceptable(id, outcome))
    violations_.add("call " + std::to_string(id) + " (" + to_string(kinds_[id]) + "): expected " +
                    to_string(expected_outcome(kinds_[id])) + ", got " + to_string(outcome) +
                    (text.empty() ? "" : " (" + text + ")"));
}

void CallBook::wrong_value(uint32_t id, const std::string& note) {
  violations_.add("call " + std::to_string(id) + " (" + to_string(kinds_[id]) + "): a wrong value: " + note);
}

EpochFindings CallBook::check_epoch(const RunLedger& ledger, int patience_ms) {
  auto all_settled = [&] {
    for (uint32_t id = begin_, end = end_.load(); id < end; ++id)
      if (kinds_[id] != Kind::none && settles_[id].load(std::memory_order_acquire) == 0) return false;
    return true;
  };
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(patience_ms);
  while (!all_settled() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  EpochFindings found;
  auto report = [&](uint32_t id, const std::string& what) {
    violations_.add("call " + std::to_string(id) + " (" + to_string(kinds_[id]) + "): " + what);
  };
  for (uint32_t id = begin_, end = end_.load(); id < end; ++id) {
    Kind kind = kinds_[id];
    uint32_t runs = ledger.runs(id);
    if (kind == Kind::none) {
      if (runs != 0) report(id, "ran " + std::to_string(runs) + " times but was never submitted");
      continue;
    }
    ++found.issued;
    ++kind_counts_[static_cast<size_t>(kind)];
    if (kind == Kind::forged_frames) forged_frames_ += forged_frame_count(id);
    uint8_t settles = settles_[id].load(std::memory_order_acquire);
    Outcome outcome = outcomes_of_[id];
    uint8_t said = cancel_said_[id].load(std::memory_order_acquire);
    if (said == 1) ++cancels_true_;
    if (said == 2) ++cancels_false_;
    if (settles == 0) {
      ++found.lost;
      report(id, "never settled (lost); it ran " + std::to_string(runs) + " times");
      continue;
    }
    if (settles > 1) ++found.settled_twice;
    if (runs > 1) {
      ++found.ran_twice;
      report(id, "ran " + std::to_string(runs) + " times");
    }
    bool answered = outcome == Outcome::value || outcome == Outcome::raised || outcome == Outcome::crashed_segv ||
                    outcome == Outcome::crashed_abort || outcome == Outcome::crashed_exit3 ||
                    outcome == Outcome::crashed_kill || outcome == Outcome::protocol_error;
    if (answered && runs != 1)
      report(id, std::string(to_string(outcome)) + " but it ran " + std::to_string(runs) + " times");
    bool cancel_kind = kind == Kind::cancel_queued || kind == Kind::cancel_running;
    if (said == 1 && outcome != Outcome::cancelled)
      report(id, std::string("cancel() said true, but it settled with ") + to_string(outcome));
    // A map fails with its earliest failing chunk's error: the items of
    // chunks that ran before a chunk the shutdown withdrew have run.
    if (outcome == Outcome::cancelled && !cancel_kind && kind != Kind::map_item && runs != 0)
      report(id, "cancelled by the shutdown (cancel_futures), yet it had begun");
    // The hand cancels it once it runs (it published its pid), and it runs
    // until stopped: cancel() with cancel_running must stop it.
    if (kind == Kind::cancel_running && said == 2)
      report(id, "cancel() of the running call said false (it then ran to its end)");
    if (outcome == Outcome::cancelled && said == 2 && !(cancel_futures_ && runs == 0))
      report(id, "cancel() said false, but it settled with TaskCancelled");
  }
  return found;
}

}  // namespace soak
