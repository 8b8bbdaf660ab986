// SPDX-License-Identifier: MIT
#include <procpool/loop/process_pool.hpp>

#include <dlfcn.h>

#include <cstdio>
#include <utility>

#include <procpool/common/type_name.hpp>
#include <procpool/loop/pool_core.hpp>

namespace procpool {

namespace detail {
std::string describe_unregistered(ErasedFn fn, const std::string& signature) {
  auto* address = reinterpret_cast<void*>(fn);
  Dl_info info{};
  if (dladdr(address, &info) != 0 && info.dli_sname && info.dli_saddr == address)
    return "the function " + demangle(info.dli_sname);  // its parameter types with it
  char buf[64];
  std::snprintf(buf, sizeof buf, "the function at %p", address);
  return std::string(buf) + " (" + signature + ")";
}

const FunctionEntry* entry_of(ErasedFn fn, std::string (*signature)(), uint32_t& id, std::exception_ptr& failure) {
  const FunctionEntry* entry = FunctionRegistry::instance().find(fn, &id);
  if (!entry) failure = std::make_exception_ptr(UnknownFunction::unregistered(describe_unregistered(fn, signature())));
  return entry;
}
}  // namespace detail

ProcessPool::ProcessPool(PoolOptions options)
    : options_max_pending_(options.max_pending), core_(detail::PoolCore::make(std::move(options))),
      uncaught_at_construction_(std::uncaught_exceptions()) {
  core_->start();
}

ProcessPool::~ProcessPool() {
  // In a process the pool was forked into, the core is kept (PoolCore::make).
  if (!core_ || core_->in_another_process()) return;
  // Unwinding (an error, a cancelled task, Ctrl-C): nobody will read the
  // results, and waiting would hold the error up.
  if (std::uncaught_exceptions() > uncaught_at_construction_) core_->halt(detail::PoolCore::StopMode::Terminate);
  else core_->shutdown_on_destroy();
}

void ProcessPool::shutdown(ShutdownOptions how) {
  core_->refuse_in_another_process("ProcessPool::shutdown()");
  core_->shutdown(how);
}

void ProcessPool::shutdown(bool wait) { shutdown(ShutdownOptions{.wait = wait}); }

void ProcessPool::terminate() {
  core_->refuse_in_another_process("ProcessPool::terminate()");
  core_->halt(detail::PoolCore::StopMode::Terminate);
}

void ProcessPool::kill() {
  core_->refuse_in_another_process("ProcessPool::kill()");
  core_->halt(detail::PoolCore::StopMode::Kill);
}

std::shared_ptr<detail::Backpressure> ProcessPool::backpressure() const noexcept { return core_->backpressure(); }

size_t ProcessPool::worker_count() const noexcept { return core_->worker_count(); }

std::vector<pid_t> ProcessPool::worker_pids() const { return core_->worker_pids(); }

PoolStats ProcessPool::stats() const { return core_->stats(); }

ProcessPool::executor_type ProcessPool::get_executor() const noexcept { return core_->executor(); }

size_t ProcessPool::max_message_bytes(const detail::PoolCore& core) noexcept { return core.max_message_bytes(); }

void detail::FrameSink::make_room(size_t need) { core_.lend_spare_frame(frame_, need); }

void ProcessPool::enqueue_frame(detail::PoolCore& core, detail::ByteBuffer frame, detail::HandleList handles,
                                detail::FrameKind kind, uint32_t function_id, std::shared_ptr<detail::StateBase> state,
                                const CallOptions& options, detail::Admission admission) {
  core.submit(std::move(frame), std::move(handles), kind, function_id, std::move(state), options, admission);
}

void detail::submit_encoded_call(ProcessPool& pool, ByteBuffer frame, HandleList handles, FrameKind kind,
                                 uint32_t function_id, std::shared_ptr<StateBase> state, const CallOptions& options) {
  ProcessPool::enqueue_frame(*pool.core_, std::move(frame), std::move(handles), kind, function_id, std::move(state),
                             options, Admission::Wait);
}

void ProcessPool::watch(detail::StateBase& state) const { state.set_poller(core_, 0); }

}  // namespace procpool
