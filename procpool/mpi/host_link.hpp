// SPDX-License-Identifier: MIT
#pragma once
// The host's end of every agent: one process-wide link on rank 0 with a
// thread of its own (the *link thread*), the only thread that calls MPI
// between init() and finalize(). Pools hand it encoded calls; it sends each
// to the least-loaded agent with room (in flight below its bound), keeps
// the rest in FIFO order, takes the agents' replies and settles the calls'
// states on the link thread (where then() callbacks run).
//
// The link thread never blocks in MPI: it tests its requests and probes
// each agent that holds calls. When a pass finds nothing it waits on a
// condition variable that a submit wakes: with no call out, until then;
// otherwise for the interval idle_backoff.hpp gives.
#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <procpool/common/function_registry.hpp>
#include <procpool/loop/future_state.hpp>
#include <procpool/mpi/frame_channel.hpp>
#include <procpool/mpi/init.hpp>

namespace procpool::mpi::detail {

class LinkPoller;

class HostLink {
 public:
  // `cancel_running`: the agents' pools' default (MpiOptions::agent_pool).
  // `agent_timeout`: MpiOptions', 0 for none.
  HostLink(MPI_Comm comm, std::vector<AgentInfo> agents, size_t in_flight_per_agent, size_t max_message_bytes,
           bool cancel_running, std::chrono::milliseconds agent_timeout);
  ~HostLink();
  HostLink(const HostLink&) = delete;
  HostLink& operator=(const HostLink&) = delete;

  // Queues a call: `frame` holds the room for its header, then its payload
  // (call_encoding.hpp), the bytes of its `handles` SharedBytes
  // (shared_bytes_section.hpp) and its CallTrailer, which says
  // `cancel_running`. `state` settles exactly once: on the link thread, or
  // on the thread whose cancel() settles it. Any thread.
  void submit(ByteBuffer frame, size_t handles, procpool::detail::FrameKind kind,
              const procpool::detail::FunctionEntry& entry, bool cancel_running,
              std::shared_ptr<procpool::detail::StateBase> state);
  // Waits until every call submitted has settled, stops the link thread,
  // then sends every agent a Stop and waits until they have it. Calls
  // submitted after this fail with PoolShutdown. On the thread that will
  // call MPI_Finalize; not on the link thread.
  void stop();
  // Settles the call behind `state` with TaskCancelled and returns true
  // when it can promise the call will not run to its end: queued on the
  // host (withdrawn: it never runs), or sent to an agent with
  // cancel_running (the agent is sent a Cancel: it withdraws the call or
  // stops its worker; the answer it still sends is dropped). False, and
  // the call's own answer settles it, for a call sent without
  // cancel_running, one already settled (its answer came first), and a
  // state that is no call of the link's (a map's whole). Any thread; never
  // blocks on an agent.
  bool cancel(procpool::detail::StateBase& state);
  // Gives `state` the link's poller, as submit does (a state it will not
  // settle itself: a map's whole, settled with its chunks).
  void watch(procpool::detail::StateBase& state);

  // Calls of every pool on the host's queue, and sent to agents and not
  // answered yet (cancelled ones included until their answer comes).
  struct Load {
    size_t queued = 0;
    size_t in_flight = 0;
  };
  Load load();

  const std::vector<AgentInfo>& agents() const noexcept { return infos_; }
  size_t max_message_bytes() const noexcept { return max_message_bytes_; }
  bool cancel_running() const noexcept { return cancel_running_; }
  bool on_link_thread() const noexcept { return std::this_thread::get_id() == thread_id_; }

 private:
  struct Call {
    procpool::detail::TaskId task = 0;
    ByteBuffer frame;
    procpool::detail::FrameKind kind;
    size_t handles = 0;
    const procpool::detail::FunctionEntry* entry = nullptr;
    std::shared_ptr<procpool::detail::StateBase> state;
  };
  struct Agent {
    AgentInfo info;
    size_t limit = 0;
    bool lost = false;
    std::unordered_map<procpool::detail::TaskId, Call> in_flight;  // the frame is dropped once sent
    // Last frame from it, or when it was given calls again after none: an
    // agent that holds calls is lost when this is agent_timeout_ old.
    std::chrono::steady_clock::time_point heard{};
  };

  // A Cancel to send: the agent's rank and the call's task.
  struct Withdrawal {
    int rank = 0;
    procpool::detail::TaskId task = 0;
  };

  void run();
  // stop()'s end: each agent not lost says Stopped (protocol.hpp).
  void await_stopped();
  bool dispatch();
  bool send_cancels();
  void lose_quiet_agents();
  bool take_replies(Agent& agent);
  void settle_reply(Agent& agent, ByteBuffer frame);
  void lose(Agent& agent, const std::string& why);
  void fail_queued_if_no_agent();
  Agent* least_loaded();
  void start_thread_locked();

  MPI_Comm comm_;
  std::vector<AgentInfo> infos_;
  size_t max_message_bytes_;
  bool cancel_running_;
  std::chrono::milliseconds agent_timeout_;
  FrameChannel channel_;  // link thread only (and stop(), once it has joined)
  std::vector<Agent> agents_;
  std::shared_ptr<LinkPoller> poller_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Call> queue_;  // guarded by mutex_: calls not yet sent, FIFO
  // Guarded by mutex_, as each call's StateBase::place is (task_id, slot:
  // -1 while queued, then the agent's rank; cancel_running).
  std::vector<Withdrawal> withdrawals_;
  uint64_t submits_ = 0;   // guarded by mutex_: wakes the link thread
  size_t unsettled_ = 0;   // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  procpool::detail::TaskId next_task_ = 0;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace procpool::mpi::detail
