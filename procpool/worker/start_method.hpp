// SPDX-License-Identifier: MIT
#pragma once
// How a pool's workers come to exist (PoolOptions::start_method), and
// procpool::init, which the forkserver and spawn methods need at the top
// of main. README.md, "Start methods", says what each leaves in a worker.
#include <optional>

namespace procpool {

enum class StartMethod {
  // A fork of the host: the fastest start, but the worker holds a copy of
  // everything the host had in memory when it was forked (keys, tokens,
  // other users' data), and fork time grows with the host's size.
  fork,
  // A fork of a small single-threaded process (the zygote) that init()
  // forks before main does anything else: the worker holds what the
  // program held then, not the host's heap, and a host with many threads
  // or gigabytes forks nothing itself. Needs init().
  forkserver,
  // A fresh exec of the program (or of PoolOptions::worker_program), with
  // its own address-space layout. Slowest start; nothing of the host but
  // what the worker is sent. Needs init() in the program it runs.
  spawn,
};

const char* to_string(StartMethod method) noexcept;

// Call first thing in main, before any thread starts and before the
// program reads a secret:
//
//   int main(int argc, char** argv) {
//     procpool::init(argc, argv);
//     ...
//
// In the program itself it forks the forkserver's zygote, which then holds
// what the program held at that point, and returns. In a worker started
// with StartMethod::spawn it never returns: the process becomes the worker
// it was started as. Calling it again is harmless; calling it in a process
// forked from one that called it makes that process a zygote of its own.
// A program that does not call it can use StartMethod::fork only; pools
// asking for another start method are refused with procpool::Error.
// Throws procpool::Error if the zygote cannot be forked.
void init(int argc, char** argv);

// The start method of pools whose PoolOptions::start_method is unset
// (Python's multiprocessing.set_start_method). Without a call: fork, or
// forkserver for a sandboxed pool.
void set_default_start_method(StartMethod method) noexcept;
std::optional<StartMethod> default_start_method() noexcept;

}  // namespace procpool
