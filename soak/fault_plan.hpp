// SPDX-License-Identifier: MIT
#pragma once
// What each soak call is made to do, drawn per call from a seeded generator,
// and the outcome each kind implies.
#include <cstdint>
#include <random>

namespace soak {

// What one call id was made to do (recorded per id by CallBook).
enum class Kind : uint8_t {
  none = 0,        // id claimed but never submitted (a map cut at an epoch's end)
  plain,           // returns expected_value(id)
  plain_deadline,  // the same under a generous deadline that must not fire
  throws,          // std::runtime_error("soak call <id>")
  segv,            // a null store: WorkerCrashed by SIGSEGV
  abort,           // std::abort(): WorkerCrashed by SIGABRT
  exit3,           // _exit(3): WorkerCrashed with exit code 3
  sigkill,         // SIGKILL from outside while it runs: WorkerCrashed by SIGKILL
  sigstop,         // SIGSTOP from outside, under a deadline: TaskTimeout
  deadline,        // sleeps past its deadline: TaskTimeout
  cancel_queued,   // cancel() right after submit: TaskCancelled if true, else its value
  cancel_running,  // cancel() once it runs: TaskCancelled if true, else its value
  text_payload,    // a std::string echoed through the rings
  shared_payload,  // a SharedBytes passed through
  map_item,        // one input of a pool.map
  forged_frames,   // writes forged frames into its own response ring: ProtocolError
  count_
};
const char* to_string(Kind kind) noexcept;

// How a settled future ended, as the settling callback classified it.
enum class Outcome : uint8_t {
  none = 0,
  value,   // the expected value
  raised,  // std::runtime_error with the call's own message
  crashed_segv,
  crashed_abort,
  crashed_exit3,
  crashed_kill,
  timed_out,       // TaskTimeout
  cancelled,       // TaskCancelled
  protocol_error,  // ProtocolError: its worker wrote what no worker may
  wrong,           // anything else (a violation, recorded with its text)
  count_
};
const char* to_string(Outcome outcome) noexcept;

// The outcome a kind implies (cancels may also end in Outcome::value, and
// in an epoch ended with cancel_futures any unstarted call in cancelled).
Outcome expected_outcome(Kind kind) noexcept;

// What the task does (soak_fault's `action` argument).
enum class Action : int { give_value = 0, throw_error, segv, abort, exit3, publish_and_sleep, sleep, forge_frames };

// One draw: a kind with its parameters.
struct Draw {
  Kind kind = Kind::plain;
  uint32_t ids = 1;         // ids it takes (a map's input count)
  uint32_t chunksize = 0;   // a map's
  uint32_t timeout_ms = 0;  // a deadline, where the kind has one
  uint64_t payload = 0;     // bytes, for the payload kinds
};

// Rates in calls per 100,000: 1 % crashes of five kinds, 0.5 % exceptions,
// deadlines, cancels, payloads (log-uniform up to 8 MiB), maps, 0.1 %
// hostile workers (forged frames).
class FaultPlan {
 public:
  // forged_per_100k: the calls of kind forged_frames, per 100,000
  // (procpool_soak --hostile; the other kinds' rates are fixed).
  FaultPlan(uint64_t seed, uint32_t forged_per_100k) : rng_(seed), forged_per_100k_(forged_per_100k) {}
  Draw draw();
  // For the event loop's calls: no map or payload kinds (they become plain).
  Draw draw_for_loop();

 private:
  std::mt19937_64 rng_;
  uint32_t forged_per_100k_;
};

// The other kinds' calls per 100,000: the most --hostile may ask for is
// the rest.
inline constexpr uint32_t kFixedFaultsPer100k = 3650;

// How many frames the hostile call `id` forges (as many as fit in its ring).
inline uint64_t forged_frame_count(uint32_t id) { return 1 + std::mt19937_64(id)() % 64; }

// The value a successful call of id returns (and each map item).
constexpr uint64_t expected_value(uint32_t id) noexcept { return uint64_t{id} * 2654435761u + 17; }
// The payload bytes for id: byte i is pattern_byte(id, i).
constexpr unsigned char pattern_byte(uint32_t id, uint64_t i) noexcept {
  return static_cast<unsigned char>(id * 131u + i * 7u + (i >> 12));
}

}  // namespace soak
