// SPDX-License-Identifier: MIT
#pragma once
// What becomes of what a worker writes to its stdout and stderr
// (PoolOptions::worker_output), and one captured line.
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace procpool {

enum class WorkerOutput {
  inherit,  // the host's own stdout and stderr (a fork's default)
  discard,  // /dev/null
  // Pipes the pool reads: each whole line goes to PoolOptions::on_output
  // with the worker's pid and the function that wrote it; the last lines of
  // a worker that crashed go into its WorkerCrashed.
  capture,
};

enum class OutputStream { out, err };

struct OutputLine {
  pid_t pid = 0;
  std::string function;  // the call the worker ran when it wrote the line ("" before its first)
  OutputStream stream = OutputStream::out;
  std::string text;  // without its newline; a line longer than kMaxOutputLine comes in pieces
};

namespace detail {

// A worker that captures its output marks in each stream where the calls
// of another function begin: kOutputMarker, the function id as 8 hex
// digits, '\n'. Written only when the function changes, so a run of calls
// to one function costs nothing. A task that prints such a line itself can
// only misname the function of its own lines.
inline constexpr char kOutputMarker = '\x1e';
inline constexpr size_t kOutputMarkerBytes = 1 + 8 + 1;
// A line longer than this is passed on in pieces of this size: a task that
// writes without newlines cannot grow the host's buffer without bound.
inline constexpr size_t kMaxOutputLine = size_t{16} * 1024;
// How many of a worker's last lines a WorkerCrashed carries.
inline constexpr size_t kLastOutputLines = 20;

}  // namespace detail
}  // namespace procpool
