// SPDX-License-Identifier: MIT
// Must not compile, with procpool's one-line reason first: a call by name
// cannot deduce the function's result type, which must be given.
#include <procpool/procpool.hpp>

int square(int x) { return x * x; }
PROCPOOL_REGISTER(square);

procpool::Task<int> run(procpool::EventLoop& loop, procpool::ProcessPool& pool) {
  co_return co_await loop.run_in_executor(pool, "square", 12);
}

int main() {
  procpool::EventLoop loop;
  procpool::ProcessPool pool({.workers = 1, .io_context = &loop.context()});
  return loop.run_until_complete(run(loop, pool));
}
