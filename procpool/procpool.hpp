// SPDX-License-Identifier: MIT
#pragma once
// procpool: call registered functions in forked worker processes over
// shared-memory rings, and get their results as futures.
//
//   long work(int n);
//   PROCPOOL_REGISTER(work);
//   procpool::ProcessPool pool({.workers = 2});
//   long v = pool.submit(work, 3).get();
#include <cereal/types/array.hpp>
#include <cereal/types/chrono.hpp>
#include <cereal/types/deque.hpp>
#include <cereal/types/list.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/set.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/unordered_set.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <procpool/common/errors.hpp>
#include <procpool/common/exception_codec.hpp>
#include <procpool/common/function_registry.hpp>
#include <procpool/common/shared_bytes.hpp>
#include <procpool/loop/event_loop.hpp>
#include <procpool/loop/future.hpp>
#include <procpool/loop/futures_wait.hpp>
#include <procpool/loop/gather.hpp>
#include <procpool/loop/map_stream.hpp>
#include <procpool/loop/pool_options.hpp>
#include <procpool/loop/process_pool.hpp>
#include <procpool/loop/result.hpp>
#include <procpool/loop/task.hpp>
#include <procpool/loop/thread_pool.hpp>
#include <procpool/loop/wait.hpp>
#include <procpool/sandbox/sandbox.hpp>
#include <procpool/worker/start_method.hpp>
#include <procpool/worker/this_call.hpp>
