// SPDX-License-Identifier: MIT
#include <procpool/mpi/host_link.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <span>

#include <procpool/common/errors.hpp>
#include <procpool/loop/answer_decoder.hpp>
#include <procpool/mpi/errors.hpp>
#include <procpool/mpi/idle_backoff.hpp>
#include <procpool/mpi/protocol.hpp>
#include <procpool/mpi/shared_bytes_section.hpp>

namespace procpool::mpi::detail {

using procpool::detail::FrameKind;
using procpool::detail::StateBase;
using procpool::detail::TaskId;

// What a Future of an MpiPool asks of its pool: that callbacks run on the
// link thread (they do: it settles the states), and that a wait there is
// refused rather than deadlocked. cancel() is HostLink::cancel; a waiter
// has nothing to poll: replies come only through the link thread.
class LinkPoller final : public procpool::detail::Poller {
 public:
  explicit LinkPoller(HostLink& link) : link_(link) {}
  bool poll_responses() override { return false; }
  void begin_polling() noexcept override {}
  void end_polling() override {}
  bool on_own_thread() const noexcept override { return link_.on_link_thread(); }
  void run_callbacks(procpool::detail::Callbacks callbacks) override { StateBase::run_each(callbacks); }
  bool cancel(StateBase& state) override { return link_.cancel(state); }
  CallStatus status_of(const StateBase&) override { return {}; }
  std::chrono::nanoseconds poll_budget(size_t) const noexcept override { return std::chrono::nanoseconds(0); }
  void polled(bool) noexcept override {}

 private:
  HostLink& link_;
};

namespace {

void settle_error(StateBase& state, std::exception_ptr error) {
  if (state.try_claim()) {
    state.set_error(std::move(error));
    state.publish();
  }
}

}  // namespace

HostLink::HostLink(MPI_Comm comm, std::vector<AgentInfo> agents, size_t in_flight_per_agent, size_t max_message_bytes,
                   bool cancel_running, std::chrono::milliseconds agent_timeout)
    : comm_(comm), infos_(std::move(agents)), max_message_bytes_(max_message_bytes), cancel_running_(cancel_running),
      agent_timeout_(agent_timeout),
      // A reply is the answer (with its SharedBytes' bytes), its worker's
      // pid and its usage; an exception's records are cut to
      // max_message_bytes by the agent.
      channel_(comm,
               max_message_bytes + sizeof(int32_t) + sizeof(procpool::detail::UsageTrailer) + kMaxSharedBytesSizes),
      poller_(std::make_shared<LinkPoller>(*this)) {
  for (const AgentInfo& info : infos_) {
    Agent agent;
    agent.info = info;
    agent.limit = in_flight_per_agent ? in_flight_per_agent : std::max<size_t>(8 * info.workers, 8);
    agents_.push_back(std::move(agent));
  }
}

HostLink::~HostLink() {
  // stop() has joined the thread on every normal path; this is for an
  // exit without finalize (a throw through init's caller).
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
}

void HostLink::submit(ByteBuffer frame, size_t handles, FrameKind kind, const procpool::detail::FunctionEntry& entry,
                      bool cancel_running, std::shared_ptr<StateBase> state) {
  // A call that waited for room has its poller already (watch): set once.
  if (state->has_poller()) state->set_request_bytes(frame.size());
  else state->set_poller(poller_, frame.size());
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      state->place = StateBase::PoolPlace{++next_task_, -1, false, 0, cancel_running};
      queue_.push_back(Call{next_task_, std::move(frame), kind, handles, &entry, state});
      ++submits_;
      ++unsettled_;
      if (!thread_.joinable()) start_thread_locked();
      state.reset();
    }
  }
  if (state) {
    settle_error(*state, std::make_exception_ptr(PoolShutdown("procpool::mpi::finalize() has stopped the agents")));
    return;
  }
  wake_.notify_one();
}

void HostLink::watch(StateBase& state) { state.set_poller(poller_, 0); }

HostLink::Load HostLink::load() {
  std::lock_guard lock(mutex_);
  return Load{queue_.size(), unsettled_ - queue_.size()};
}

void HostLink::start_thread_locked() {
  thread_ = std::thread([this] { run(); });
  thread_id_ = thread_.get_id();
}

void HostLink::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (Agent& agent : agents_) {
    if (agent.lost) continue;
    ByteBuffer stop;
    auto header = procpool::detail::make_frame_header(FrameKind::Stop, 0, 0);
    stop.append(&header, sizeof header);
    try {
      channel_.send(agent.info.rank, std::move(stop));
    } catch (const MpiError&) {
      agent.lost = true;  // nothing to tell it: it is gone
    }
  }
  // Until every Stop is out (a few µs: they are small).
  while (channel_.sending()) {
    if (!channel_.progress_sends()) std::this_thread::yield();
  }
  await_stopped();
}

void HostLink::await_stopped() {
  // A completed send may still sit in a transport's buffers here; Stopped
  // proves the Stop arrived. What else comes meanwhile (the answer to a
  // call cancelled here, a heartbeat) was settled or means nothing now.
  // An agent that says nothing within agent_timeout is left to MPI.
  auto give_up = std::chrono::steady_clock::now() + agent_timeout_;
  std::vector<Agent*> waiting;
  for (Agent& agent : agents_)
    if (!agent.lost) waiting.push_back(&agent);
  IdleBackoff backoff;
  while (!waiting.empty() && std::chrono::steady_clock::now() < give_up) {
    bool any = false;
    for (size_t i = 0; i < waiting.size();) {
      bool stopped = false;
      try {
        while (auto frame = channel_.try_receive(waiting[i]->info.rank)) {
          procpool::detail::FrameHeader header;
          std::memcpy(&header, frame->data(), sizeof header);
          any = true;
          if (static_cast<FrameKind>(header.kind) == kStoppedFrame) {
            stopped = true;
            break;
          }
        }
      } catch (const std::exception&) {
        stopped = true;  // an MPI error or a malformed frame: nothing to wait for
      }
      if (stopped) {
        waiting[i] = waiting.back();
        waiting.pop_back();
      } else {
        ++i;
      }
    }
    if (any) backoff.active();
    else backoff.pause();
  }
}

void HostLink::run() {
  IdleBackoff backoff;
  uint64_t seen = 0;  // submits counted when this pass began
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (stopping_ && unsettled_ == 0) return;
      seen = submits_;
    }
    bool busy = false;
    try {
      busy |= dispatch();
      busy |= send_cancels();
      busy |= channel_.progress_sends();
    } catch (const MpiError& e) {
      // A send's completion failed: which agent cannot be told apart here,
      // so every agent is considered lost (Open MPI ends the job anyway).
      for (Agent& agent : agents_) lose(agent, e.what());
    }
    for (Agent& agent : agents_)
      if (!agent.lost && !agent.in_flight.empty()) busy |= take_replies(agent);
    lose_quiet_agents();
    fail_queued_if_no_agent();
    if (busy) {
      backoff.active();
      continue;
    }
    bool waiting_for_agents = channel_.sending() || std::any_of(agents_.begin(), agents_.end(),
                                                                [](const Agent& a) { return !a.in_flight.empty(); });
    auto wakes = [&] { return submits_ != seen || (stopping_ && unsettled_ == 0); };
    if (!waiting_for_agents) {
      // Nothing can arrive: sleep until a submit (or the stop) comes.
      std::unique_lock lock(mutex_);
      wake_.wait(lock, wakes);
      backoff.active();
      continue;
    }
    backoff.pause(mutex_, wake_, wakes);
  }
}

HostLink::Agent* HostLink::least_loaded() {
  Agent* best = nullptr;
  for (Agent& agent : agents_) {
    if (agent.lost || agent.in_flight.size() >= agent.limit) continue;
    // Fewest calls per worker; compared crosswise, without division.
    if (!best || agent.in_flight.size() * best->info.workers < best->in_flight.size() * agent.info.workers)
      best = &agent;
  }
  return best;
}

bool HostLink::dispatch() {
  bool any = false;
  for (;;) {
    Agent* agent = least_loaded();
    if (!agent) break;
    Call call;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) break;
      call = std::move(queue_.front());
      queue_.pop_front();
      call.state->place.slot = agent->info.rank;  // cancel() looks for it there now
    }
    auto header = procpool::detail::make_frame_header(
        call.kind, call.task, call.frame.size() - sizeof(procpool::detail::FrameHeader), call.handles);
    std::memcpy(call.frame.data(), &header, sizeof header);
    ByteBuffer frame = std::move(call.frame);
    TaskId task = call.task;
    // Its heartbeats stopped when it had nothing to do: the clock starts now.
    if (agent->in_flight.empty()) agent->heard = std::chrono::steady_clock::now();
    agent->in_flight.emplace(task, std::move(call));
    try {
      channel_.send(agent->info.rank, std::move(frame));
    } catch (const MpiError& e) {
      lose(*agent, e.what());
    }
    any = true;
  }
  return any;
}

bool HostLink::take_replies(Agent& agent) {
  bool any = false;
  try {
    while (auto frame = channel_.try_receive(agent.info.rank)) {
      agent.heard = std::chrono::steady_clock::now();
      settle_reply(agent, std::move(*frame));
      any = true;
    }
  } catch (const MpiError& e) {
    lose(agent, e.what());
    any = true;
  } catch (const MalformedFrame& e) {
    lose(agent, std::string("it sent ") + e.what());
    any = true;
  }
  return any;
}

void HostLink::settle_reply(Agent& agent, ByteBuffer frame) {
  procpool::detail::FrameHeader header;
  std::memcpy(&header, frame.data(), sizeof header);
  auto kind = static_cast<FrameKind>(header.kind);
  if (kind == kAliveFrame && header.length == 0) return;  // heard: that is all it says
  if (kind != FrameKind::Value && kind != FrameKind::Exception)
    throw MalformedFrame("a reply of frame kind " + std::to_string(header.kind));
  auto it = agent.in_flight.find(header.task_id);
  if (it == agent.in_flight.end())
    throw MalformedFrame("a reply to task " + std::to_string(header.task_id) + ", which it does not hold");
  if (header.length < sizeof(int32_t)) throw MalformedFrame("a reply too short to name its worker");
  size_t handle_count = procpool::detail::handle_count(header.handles);
  if (handle_count > 0 && kind != FrameKind::Value) throw MalformedFrame("an Exception reply with SharedBytes");
  int32_t worker = 0;
  std::memcpy(&worker, frame.data() + sizeof header, sizeof worker);
  std::span<const std::byte> answer(frame.data() + kReplyPrefixBytes, frame.size() - kReplyPrefixBytes), rest;
  // The result's SharedBytes, made here from their bytes at the end of the
  // reply. A section that does not hold throws MalformedFrame while the
  // call is still held: the agent is lost, and its calls with it.
  procpool::detail::HandleList handles;
  std::exception_ptr unmade;  // out of memory for them: this call fails
  try {
    handles = take_shared_bytes(answer, handle_count, max_message_bytes_);
  } catch (const MalformedFrame&) {
    throw;
  } catch (...) {
    unmade = std::current_exception();
  }
  Call call = std::move(it->second);
  agent.in_flight.erase(it);
  header.length = answer.size();
  bool measured = (header.handles & procpool::detail::kMeasureUsage) != 0;
  if (call.state->try_claim()) {
    procpool::detail::AnswerVerdict verdict;
    try {
      if (unmade) std::rethrow_exception(unmade);
      // As a local answer: the usage trailer off its end, then the answer.
      procpool::detail::check_answer(header, false, measured, answer, rest, verdict);
      procpool::detail::decode_answer(*call.state, header, answer, rest, &handles, call.entry->name.c_str(), worker,
                                      verdict);
    } catch (...) {
      call.state->set_error(std::current_exception());  // out of memory
    }
    call.state->publish();
  }
  std::lock_guard lock(mutex_);
  --unsettled_;
}

void HostLink::lose(Agent& agent, const std::string& why) {
  if (agent.lost) return;
  agent.lost = true;
  channel_.forget(agent.info.rank);
  auto error = std::make_exception_ptr(AgentLost(agent.info.rank, agent.info.host, why));
  size_t failed = agent.in_flight.size();
  for (auto& [task, call] : agent.in_flight) settle_error(*call.state, error);
  agent.in_flight.clear();
  std::lock_guard lock(mutex_);
  unsettled_ -= failed;
}

void HostLink::lose_quiet_agents() {
  if (agent_timeout_.count() <= 0) return;
  auto now = std::chrono::steady_clock::now();
  for (Agent& agent : agents_) {
    if (agent.lost || agent.in_flight.empty() || now - agent.heard < agent_timeout_) continue;
    lose(agent, "no word from it for " + std::to_string(agent_timeout_.count()) +
                    " ms while it held calls (MpiOptions::agent_timeout; it sends a heartbeat every " +
                    std::to_string(agent_timeout_.count() / 8) + " ms): it died or cannot be reached");
  }
}

void HostLink::fail_queued_if_no_agent() {
  if (std::any_of(agents_.begin(), agents_.end(), [](const Agent& a) { return !a.lost; })) return;
  std::deque<Call> doomed;
  {
    std::lock_guard lock(mutex_);
    doomed.swap(queue_);
    unsettled_ -= doomed.size();
  }
  if (doomed.empty()) return;
  auto error = std::make_exception_ptr(
      PoolBroken(agents_.empty() ? "there are no MPI agents: start the program with mpirun -np N, N >= 2"
                                 : "every MPI agent was lost"));
  for (Call& call : doomed) settle_error(*call.state, error);
}

bool HostLink::cancel(StateBase& state) {
  Call withdrawn;
  Withdrawal sent;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(queue_.begin(), queue_.end(), [&](const Call& c) { return c.state.get() == &state; });
    if (it != queue_.end()) {
      withdrawn = std::move(*it);
      queue_.erase(it);
      --unsettled_;
    } else if (state.place.slot > 0 && state.place.cancel_running) {
      sent = Withdrawal{state.place.slot, state.place.task_id};
    } else {
      // Not a call of ours (a map's whole), or one sent without
      // cancel_running: its answer settles it.
      return false;
    }
  }
  // Outside the lock: the state's callbacks may submit.
  if (withdrawn.state)
    return withdrawn.state->settle_error(
        std::make_exception_ptr(TaskCancelled("the call was cancelled before it was sent to an agent")));
  // Whoever claims first settles it: this cancel, or its answer (then
  // false). infos_[i] is rank i + 1 (init.cpp), as agents_[i] is.
  const AgentInfo& agent = infos_[static_cast<size_t>(sent.rank - 1)];
  if (!state.settle_error(std::make_exception_ptr(
          TaskCancelled("the call was cancelled while MPI rank " + std::to_string(agent.rank) + " (host " + agent.host +
                        ") held it: the agent withdraws it, or stops the worker running it"))))
    return false;
  {
    std::lock_guard lock(mutex_);
    withdrawals_.push_back(sent);
    ++submits_;  // wakes the link thread
  }
  wake_.notify_one();
  return true;
}

bool HostLink::send_cancels() {
  std::vector<Withdrawal> withdrawals;
  {
    std::lock_guard lock(mutex_);
    if (withdrawals_.empty()) return false;
    withdrawals.swap(withdrawals_);
  }
  for (const Withdrawal& w : withdrawals) {
    Agent& agent = agents_[static_cast<size_t>(w.rank - 1)];
    // Answered meanwhile, or lost: nothing to withdraw.
    if (agent.lost || !agent.in_flight.contains(w.task)) continue;
    ByteBuffer frame;
    auto header = procpool::detail::make_frame_header(kCancelFrame, w.task, 0);
    frame.append(&header, sizeof header);
    try {
      channel_.send(agent.info.rank, std::move(frame));
    } catch (const MpiError& e) {
      lose(agent, e.what());
    }
  }
  return true;
}

}  // namespace procpool::mpi::detail
