#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One round of the Python baselines of the procpool benchmarks.

Measures what a Python user would pick instead of procpool: asyncio with
concurrent.futures.ProcessPoolExecutor (python-ppe) or with loky
(python-loky). The C++ driver runs this script once per round and system and
reads tab-separated lines from stdout:

    R     <system> <figure> <param> <round> <value>
    NOTE  <system> <figure> <text>
    SKIP  <system> <reason>

Progress goes to stderr. Usage:

    executor_bench.py --system python-ppe|python-loky --round R
                      [--quick] [--raw DIR] [--workers 2]
"""
import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import importlib
import math
import multiprocessing
import multiprocessing.resource_tracker
import os
import sys
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    # Workers unpickle task references as `pp_tasks.<name>`; they inherit
    # (fork) or are sent (loky) this sys.path.
    sys.path.insert(0, HERE)

import pp_tasks  # noqa: E402  (needs the sys.path entry above)

MIB = 1 << 20
CRASH_NEIGHBOURS = 40  # sleep_ms(2) tasks queued right behind kill_self
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass(frozen=True)
class Config:
    """Sample sizes of one round."""

    workers: int = 2
    rtt_warmup: int = 200
    rtt_calls: int = 3000
    gather_count: int = 100_000
    map_counts: tuple = (1_000_000, 100_000)
    payload_reps: tuple = ((64, 200), (4096, 200), (64 * 1024, 200), (MIB, 20), (64 * MIB, 3))
    scaling_calls: int = 8
    lucky_iterations: int = pp_tasks.ITER
    samples: int = 5  # startup, shutdown
    crash_samples: int = 3
    pending_count: int = 100_000
    recycle_calls: int = 400


QUICK = Config(
    rtt_calls=200,
    gather_count=2000,
    map_counts=(20_000, 2000),
    payload_reps=((64, 3), (4096, 3), (64 * 1024, 3), (MIB, 1)),
    scaling_calls=4,
    lucky_iterations=pp_tasks.ITER // 10,
    samples=1,
    crash_samples=1,
    pending_count=5000,
    recycle_calls=20,
)


class Reporter:
    """Writes records and notes to stdout, progress to stderr."""

    def __init__(self, system, round_no, raw_dir):
        self.system = system
        self.round = round_no
        self.raw_dir = raw_dir

    def record(self, figure, param, value):
        fields = ("R", self.system, figure, str(param), str(self.round), str(value))
        print("\t".join(fields), flush=True)

    def note(self, figure, text):
        print("\t".join(("NOTE", self.system, figure, text)), flush=True)

    def progress(self, text):
        print(f"{self.system}: round {self.round}: {text}", file=sys.stderr, flush=True)

    def raw_rtt(self, micros):
        """Appends every round-trip sample to DIR/<system>.rtt.tsv."""
        if not self.raw_dir:
            return
        os.makedirs(self.raw_dir, exist_ok=True)
        path = os.path.join(self.raw_dir, f"{self.system}.rtt.tsv")
        with open(path, "a", encoding="ascii") as out:
            if out.tell() == 0:
                out.write("round\tmicros\n")
            out.writelines(f"{self.round}\t{us:.3f}\n" for us in micros)


class PpeSystem:
    """concurrent.futures.ProcessPoolExecutor with the fork start method."""

    name = "python-ppe"
    replace_note = ("pool broken after a worker crash (BrokenProcessPool): a new executor had to "
                    "be built; crash_replace includes building it")

    def pool(self, workers):
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))

    fresh_pool = pool  # every ProcessPoolExecutor starts its own processes

    def replace_broken(self, workers):
        """A broken ProcessPoolExecutor stays broken: the user builds another."""
        return self.pool(workers)

    def cancel_and_shutdown(self, ex):
        """Cancels the calls not yet sent to a worker, waits for the others."""
        ex.shutdown(wait=True, cancel_futures=True)

    def close(self):
        """Nothing outlives the executors of a fork pool."""


class LokySystem:
    """loky with its own start method (fork + exec of a fresh interpreter).

    Pools come from get_reusable_executor, loky's main entry point, except
    where a figure needs processes started anew (fresh_pool).
    """

    name = "python-loky"
    replace_note = ("reusable executor broken after a worker crash (TerminatedWorkerError): "
                    "calling loky.get_reusable_executor() again rebuilt it; crash_replace "
                    "includes the rebuild")

    def __init__(self, loky):
        self.loky = loky

    def pool(self, workers):
        return self.loky.get_reusable_executor(max_workers=workers)

    def fresh_pool(self, workers):
        """A non-reusable executor: each one really starts its processes."""
        return self.loky.ProcessPoolExecutor(max_workers=workers)

    def replace_broken(self, workers):
        """The reusable executor notices it is broken and restarts itself."""
        return self.pool(workers)

    def cancel_and_shutdown(self, ex):
        """loky cannot cancel queued calls: it fails them and kills the workers."""
        ex.shutdown(wait=True, kill_workers=True)

    def close(self):
        """Ends the resource trackers loky started: its own and multiprocessing's.

        They would exit by themselves, but only after this process does, so the
        driver would find them alive when the round is over.
        """
        own = importlib.import_module(self.loky.__name__ + ".backend.resource_tracker")
        for tracker in (own._resource_tracker, multiprocessing.resource_tracker._resource_tracker):
            stop_resource_tracker(tracker)


def stop_resource_tracker(tracker):
    """Closes a resource tracker's pipe, on which it exits, and reaps it."""
    with tracker._lock:
        if tracker._fd is None:
            return
        os.close(tracker._fd)
        os.waitpid(tracker._pid, 0)
        tracker._fd = tracker._pid = None


def import_loky():
    """Returns the loky module, standalone or vendored by joblib."""
    try:
        import loky
    except ImportError:
        from joblib.externals import loky
    return loky


def percentile(values, p):
    """Nearest-rank percentile (0 < p <= 1), as in bench_util.hpp."""
    ordered = sorted(values)
    rank = math.ceil(p * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def median(values):
    return percentile(values, 0.5)


def elapsed_us(start_ns):
    return (time.perf_counter_ns() - start_ns) / 1e3


def call(ex, fn, *args):
    """Submits fn(*args) the way an asyncio user does: run_in_executor."""
    return asyncio.get_running_loop().run_in_executor(ex, fn, *args)


async def warm(ex, workers):
    """Runs calls until each worker has answered one; returns the worker pids."""
    pids = set()
    for _ in range(100):
        calls = (call(ex, pp_tasks.pid_after, 10) for _ in range(workers))
        pids.update(await asyncio.gather(*calls))
        if len(pids) >= workers:
            return pids
    raise RuntimeError(f"only {len(pids)} of {workers} workers answered")


async def fig_rtt(ex, cfg, rep):
    """Awaited no-op round trip, one call at a time: the pool's latency floor."""
    for _ in range(cfg.rtt_warmup):
        await call(ex, pp_tasks.noop)
    micros = []
    for _ in range(cfg.rtt_calls):
        start = time.perf_counter_ns()
        await call(ex, pp_tasks.noop)
        micros.append(elapsed_us(start))
    for param, p in (("p50", 0.5), ("p99", 0.99), ("p999", 0.999)):
        rep.record("rtt", param, percentile(micros, p))
    rep.raw_rtt(micros)
    rep.progress(f"rtt p50 {percentile(micros, 0.5):.0f} us")


async def fig_throughput(ex, cfg, rep):
    """No-ops all submitted with run_in_executor, then awaited with gather.

    One task per submission, the plain asyncio pattern. A million of them is
    not run: the note gives the time it would take at the measured rate.
    """
    n = cfg.gather_count
    start = time.perf_counter_ns()
    await asyncio.gather(*(call(ex, pp_tasks.noop) for _ in range(n)))
    rate = n / (elapsed_us(start) / 1e6)
    rep.record("throughput", n, rate)
    rep.note("throughput", "1,000,000 plain submissions not run: at the measured rate it would "
             f"take {1e6 / rate:.0f} s per round")
    rep.progress(f"gather throughput {rate:.0f} tasks/s")


def map_rate(ex, n):
    """Tasks/s of Executor.map over n no-ops in chunks of 256 calls."""
    start = time.perf_counter_ns()
    results = list(ex.map(pp_tasks.noop_arg, range(n), chunksize=256))
    rate = n / (elapsed_us(start) / 1e6)
    if len(results) != n:
        raise RuntimeError(f"map returned {len(results)} of {n} results")
    return rate


async def fig_throughput_map(ex, cfg, rep):
    """No-ops through Executor.map with chunksize=256: Python's batched path."""
    for n in cfg.map_counts:
        rate = map_rate(ex, n)
        rep.record("throughput_map", n, rate)
        rep.progress(f"map of {n} no-ops: {rate:.0f} tasks/s")


async def echo_median_us(ex, size, reps):
    """Median round trip of echoing `size` bytes, after one untimed echo."""
    data = b"\xa5" * size
    await call(ex, pp_tasks.echo, data)
    micros = []
    for _ in range(reps):
        start = time.perf_counter_ns()
        back = await call(ex, pp_tasks.echo, data)
        micros.append(elapsed_us(start))
        if len(back) != size:
            raise RuntimeError(f"echo of {size} bytes returned {len(back)}")
    return median(micros)


async def fig_payload(ex, cfg, rep):
    """Echo of a bytes object: payload_rtt in us, payload_bw = size / rtt (MB/s)."""
    for size, reps in cfg.payload_reps:
        us = await echo_median_us(ex, size, reps)
        rep.record("payload_rtt", size, us)
        rep.record("payload_bw", size, size / us)
        rep.progress(f"echo of {size} bytes: {us:.0f} us, {size / us:.0f} MB/s")


async def lucky_gather_s(system, cfg, workers):
    """Seconds to gather cfg.scaling_calls lucky_number calls on a fresh pool."""
    iterations = cfg.lucky_iterations
    with system.fresh_pool(workers) as ex:
        await warm(ex, workers)
        start = time.perf_counter_ns()
        results = await asyncio.gather(*(call(ex, pp_tasks.lucky_number, n, iterations)
                                         for n in range(1, cfg.scaling_calls + 1)))
        seconds = elapsed_us(start) / 1e6
    triangle = iterations * (iterations - 1) // 2
    if results != [n * triangle for n in range(1, cfg.scaling_calls + 1)]:
        raise RuntimeError("lucky_number returned a wrong result")
    return seconds


async def fig_scaling(system, cfg, rep):
    """CPU-bound calls on 1, 2 and 4 workers; speedup = t(1) / t(k)."""
    seconds = {k: await lucky_gather_s(system, cfg, k) for k in (1, 2, 4)}
    for k, s in seconds.items():
        rep.record("scaling", k, s)
    for k in (2, 4):
        rep.record("speedup", k, seconds[1] / seconds[k])
    rep.progress("scaling " + ", ".join(f"{k}: {s:.3f} s" for k, s in seconds.items()))


async def fig_uneven(ex, cfg, rep):
    """A 300 ms call, then six 10 ms calls: until the six are done, in ms."""
    ms = []
    for _ in range(cfg.crash_samples):
        await warm(ex, cfg.workers)
        start = time.perf_counter_ns()
        long_call = call(ex, pp_tasks.sleep_ms, 300)
        await asyncio.gather(*(call(ex, pp_tasks.sleep_ms, 10) for _ in range(6)))
        ms.append(elapsed_us(start) / 1e3)
        await long_call
    rep.record("uneven", cfg.workers, median(ms))
    rep.progress(f"uneven calls {median(ms):.1f} ms")


async def startup_ms(system, workers):
    """Creating an executor until its first no-op result (processes included)."""
    start = time.perf_counter_ns()
    with system.fresh_pool(workers) as ex:
        await call(ex, pp_tasks.noop)
        return elapsed_us(start) / 1e3


async def shutdown_ms(system, workers):
    """shutdown(wait=True) of an idle executor whose workers all ran a call."""
    with system.fresh_pool(workers) as ex:
        await warm(ex, workers)
        start = time.perf_counter_ns()
        ex.shutdown(wait=True)
        return elapsed_us(start) / 1e3


async def fig_startup_shutdown(system, cfg, rep):
    """Median cost of starting and of stopping a pool, on non-reusable executors."""
    w = cfg.workers
    up = [await startup_ms(system, w) for _ in range(cfg.samples)]
    down = [await shutdown_ms(system, w) for _ in range(cfg.samples)]
    rep.record("startup", w, median(up))
    rep.record("shutdown", w, median(down))
    rep.progress(f"startup {median(up):.1f} ms, shutdown {median(down):.1f} ms")


async def fig_recycle(system, cfg, rep):
    """No-ops through a pool whose workers each serve one call (max_tasks_per_child=1).

    Only ProcessPoolExecutor has the option (loky has none). It refuses the
    fork start method with it; forkserver is the fastest it accepts.
    """
    if system.name != PpeSystem.name:
        return
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(cfg.workers, mp_context=ctx, max_tasks_per_child=1) as ex:
        await call(ex, pp_tasks.noop)  # the fork server is up
        n = cfg.recycle_calls
        start = time.perf_counter_ns()
        await asyncio.gather(*(call(ex, pp_tasks.noop) for _ in range(n)))
        rate = n / (elapsed_us(start) / 1e6)
    rep.record("recycle_throughput", 1, rate)
    rep.progress(f"max_tasks_per_child=1: {rate:.0f} calls/s")


async def crash_sample(system, workers):
    """One crash: returns (ms to the failure, neighbours failed, ms to a served no-op).

    kill_self goes first, so it starts at once, and CRASH_NEIGHBOURS
    sleep_ms(2) tasks queue behind it, so the crash hits a pool with work; a
    task the broken pool refuses to take counts as failed. Recovery is what
    the user has to do once the crashed call reports the broken pool
    (system.replace_broken).
    """
    with contextlib.ExitStack() as executors:
        ex = executors.enter_context(system.pool(workers))
        await warm(ex, workers)
        start = time.perf_counter_ns()
        crash = call(ex, pp_tasks.kill_self)
        others, refused = [], 0
        for _ in range(CRASH_NEIGHBOURS):
            try:
                others.append(call(ex, pp_tasks.sleep_ms, 2))
            except BrokenProcessPool:  # the pool broke before this one was submitted
                refused += 1
        try:
            await crash
        except BrokenProcessPool:
            fail_us = elapsed_us(start)
        else:
            raise RuntimeError("kill_self returned")
        ex = executors.enter_context(system.replace_broken(workers))
        await call(ex, pp_tasks.noop)
        replace_us = elapsed_us(start)
        outcomes = await asyncio.gather(*others, return_exceptions=True)
    failed = refused + sum(isinstance(o, BaseException) for o in outcomes)
    return fail_us / 1e3, failed, replace_us / 1e3


async def fig_crash(system, cfg, rep):
    """Cost of a worker dying mid-task: medians over cfg.crash_samples crashes."""
    w = cfg.workers
    samples = [await crash_sample(system, w) for _ in range(cfg.crash_samples)]
    fail_ms, failed, replace_ms = (median(column) for column in zip(*samples))
    rep.record("crash_fail", w, fail_ms)
    rep.record("crash_others_failed", CRASH_NEIGHBOURS, failed)
    rep.record("crash_replace", w, replace_ms)
    rep.note("crash_replace", system.replace_note)
    rep.progress(f"crash: failed after {fail_ms:.1f} ms, {failed} others failed, "
                 f"served again after {replace_ms:.1f} ms")


def release_free_heap():
    """Collects garbage and hands free heap pages back to the kernel (glibc).

    Without it the tasks would partly reuse pages that earlier figures freed
    but the process kept resident, and RSS would understate their cost.
    """
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def rss_bytes():
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


async def pending_task_bytes(system, ex, cfg):
    """Host RSS growth per task submitted but not yet started.

    Every worker is held in block_until on a file that does not exist yet, so
    the no-ops queue up in the host; the file is created once RSS is read.
    The pending tasks are then dropped (cancel_and_shutdown), not drained.
    """
    with tempfile.TemporaryDirectory() as tmp:
        gate = os.path.join(tmp, "release")
        blockers = [call(ex, pp_tasks.block_until, gate) for _ in range(cfg.workers)]
        release_free_heap()
        before = rss_bytes()
        pending = [call(ex, pp_tasks.noop) for _ in range(cfg.pending_count)]
        grown = rss_bytes() - before
        open(gate, "x", encoding="ascii").close()
        system.cancel_and_shutdown(ex)
        await asyncio.gather(*blockers, *pending, return_exceptions=True)
    return grown / cfg.pending_count


def pss_kib(pid):
    """Proportional set size of a process, from /proc/<pid>/smaps_rollup."""
    with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise RuntimeError(f"no Pss line for process {pid}")


async def fig_memory(system, cfg, rep):
    """Memory of a warmed pool: its workers', then the host's per pending task.

    mem_worker is the workers' average Pss, where pages shared with the host or
    with each other count pro rata; mem_pending is pending_task_bytes.
    """
    w = cfg.workers
    release_free_heap()  # forked workers would share, and be charged for, freed heap
    with system.pool(w) as ex:
        pids = await warm(ex, w)
        if pids != set(ex._processes):
            raise RuntimeError(f"workers {sorted(pids)} are not the pool's {sorted(ex._processes)}")
        worker_kib = sum(pss_kib(pid) for pid in pids) / len(pids)
        per_task = await pending_task_bytes(system, ex, cfg)
    rep.record("mem_pending", cfg.pending_count, per_task)
    rep.record("mem_worker", w, worker_kib)
    rep.progress(f"{per_task:.0f} bytes per pending task, worker Pss {worker_kib:.0f} KiB")


# Figures measured on one warmed pool of cfg.workers, in this order.
POOL_FIGURES = (fig_rtt, fig_throughput, fig_throughput_map, fig_payload, fig_uneven)
# Figures that build their own pools.
SYSTEM_FIGURES = (fig_scaling, fig_startup_shutdown, fig_crash, fig_recycle, fig_memory)


def figure_name(figure):
    return figure.__name__[len("fig_"):]


async def run_round(system, cfg, rep, names=None):
    """One round of every figure, or of those `names` lists."""
    chosen = lambda figures: [f for f in figures if names is None or figure_name(f) in names]
    with system.pool(cfg.workers) as ex:
        await warm(ex, cfg.workers)
        for figure in chosen(POOL_FIGURES):
            await figure(ex, cfg, rep)
    for figure in chosen(SYSTEM_FIGURES):
        await figure(system, cfg, rep)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", required=True, choices=(PpeSystem.name, LokySystem.name))
    parser.add_argument("--round", required=True, type=int)
    parser.add_argument("--quick", action="store_true", help="small samples, for a smoke test")
    parser.add_argument("--raw", metavar="DIR",
                        help="append every rtt sample to DIR/<system>.rtt.tsv")
    parser.add_argument("--workers", type=int, default=2)
    names = [figure_name(f) for f in POOL_FIGURES + SYSTEM_FIGURES]
    parser.add_argument("--figures", metavar="NAMES", type=lambda text: text.split(","),
                        help="only these figures, comma-separated: " + ", ".join(names) + " (default: all)")
    args = parser.parse_args(argv)
    if args.figures and not set(args.figures) <= set(names):
        parser.error("unknown figure in --figures: " + ", ".join(sorted(set(args.figures) - set(names))))
    return args


def make_system(name):
    """The system to measure, or None after printing a SKIP line."""
    if name == PpeSystem.name:
        return PpeSystem()
    try:
        return LokySystem(import_loky())
    except ImportError as e:
        print(f"SKIP\t{name}\tloky cannot be imported ({e})", flush=True)
        return None


def main(argv):
    args = parse_args(argv)
    try:
        system = make_system(args.system)
        if system is None:
            return 0
        cfg = dataclasses.replace(QUICK if args.quick else Config(), workers=args.workers)
        rep = Reporter(system.name, args.round, args.raw)
        rep.progress(f"starting ({sys.executable} {sys.version.split()[0]})")
        try:
            asyncio.run(run_round(system, cfg, rep, args.figures))
        finally:
            system.close()
        return 0
    except Exception:
        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
