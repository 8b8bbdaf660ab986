// SPDX-License-Identifier: MIT
// Run under mpirun -np 3 with Open MPI told not to end the job when a rank
// dies (--enable-recovery --mca orte_abort_on_non_zero_status 0; see
// tests/CMakeLists.txt): rank 0 SIGKILLs the agent on rank 2 while both
// agents hold calls. The calls rank 2 held must fail with AgentLost naming
// rank 2 once MpiOptions::agent_timeout passes without a heartbeat (MPI
// over shared memory reports no error for a dead peer); rank 1's calls
// must give their results, and later calls must go to rank 1 only. Prints
// "agent lost: <what()>" and exits 0 on success.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <procpool/mpi/mpi.hpp>

using namespace std::chrono_literals;

namespace {
double nap(int ms) {
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return ms;
}
// The agent whose worker runs the call (forkserver clones it as its child).
pid_t agent_pid() { return ::getppid(); }
}  // namespace
PROCPOOL_REGISTER(nap);
PROCPOOL_REGISTER(agent_pid);

int main(int argc, char** argv) {
  procpool::mpi::MpiOptions options;
  options.agent_timeout = 1000ms;
  procpool::mpi::init(argc, argv, options);
  int failures = 0;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::printf("FAILED: %s\n", what.c_str());
      ++failures;
    }
  };
  {
    procpool::mpi::MpiPool pool;
    auto agents = pool.agents();
    expect(agents.size() == 2 && agents[1].rank == 2, "two agents, ranks 1 and 2");
    // Least-loaded dispatch alternates: two calls at each agent.
    std::vector<procpool::Future<double>> held;
    for (int i = 0; i < 4; ++i) held.push_back(pool.submit(nap, 6000));
    std::this_thread::sleep_for(300ms);
    ::kill(agents[1].pid, SIGKILL);
    auto killed = std::chrono::steady_clock::now();
    // The lost calls settle first: rank 1's run 5.7 s more. Within the
    // timeout and some slack for a loaded machine.
    auto ready = [&] {
      int n = 0;
      for (auto& f : held) n += f.ready();
      return n;
    };
    while (ready() < 2 && std::chrono::steady_clock::now() - killed < 20s) std::this_thread::sleep_for(10ms);
    auto after = std::chrono::steady_clock::now() - killed;
    expect(after < 4000ms, "two calls settled within agent_timeout and some slack (" +
                               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(after).count()) +
                               " ms)");
    int lost = 0, answered = 0;
    for (auto& f : held) {
      if (!f.wait_for(20s)) {
        expect(false, "a call of the killed agent never settled");
        continue;
      }
      try {
        expect(f.get() == 6000, "rank 1's calls give their results");
        ++answered;
      } catch (const procpool::mpi::AgentLost& e) {
        ++lost;
        expect(e.rank() == 2, "AgentLost names rank 2");
        std::string what = e.what();
        expect(what.find("no word from it") != std::string::npos, "AgentLost says it went quiet");
        if (lost == 1) std::printf("agent lost: %s\n", e.what());
      } catch (const std::exception& e) {
        expect(false, std::string("unexpected ") + e.what());
      }
    }
    expect(lost == 2 && answered == 2, "two calls lost, two answered (" + std::to_string(lost) + " lost)");
    // Later calls go to rank 1 alone.
    std::vector<procpool::Future<pid_t>> later;
    for (int i = 0; i < 6; ++i) later.push_back(pool.submit(agent_pid));
    for (auto& f : later) {
      try {
        expect(f.get() == agents[0].pid, "a later call ran on rank 1's agent");
      } catch (const std::exception& e) {
        expect(false, std::string("a later call failed: ") + e.what());
      }
    }
  }
  // The live agent says Stopped at once; the lost one is not waited for.
  // Without the Stopped frame, finalize would wait out agent_timeout.
  auto finalizing = std::chrono::steady_clock::now();
  procpool::mpi::finalize();
  auto finalize_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - finalizing).count();
  expect(finalize_ms < 900, "finalize took " + std::to_string(finalize_ms) + " ms (agent_timeout is 1000)");
  std::printf(failures ? "agent_lost: %d failures\n" : "agent_lost: ok\n", failures);
  return failures ? 1 : 0;
}
