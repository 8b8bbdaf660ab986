#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Python's start methods: what starting and replacing worker processes costs.

The Python reference side of the "start methods" benchmark. For each of
multiprocessing's contexts fork, forkserver and spawn (concurrent.futures.
ProcessPoolExecutor with that mp_context) and for loky, it measures, while
the host process holds H of extra heap (H = 10 MiB, then 1 GiB: a bytearray
with one byte written in every 4096, so every page is resident before any
pool is made):

  sm_startup       A fresh executor of 2 workers, from its constructor to the
                   first result of a no-op call. ProcessPoolExecutor starts
                   the workers of fork all at once, those of forkserver and
                   spawn on demand (the first call starts one of the two);
                   loky starts both. Loky is loky.ProcessPoolExecutor, a
                   fresh one each round, in loky's own start method (fork +
                   exec of a new interpreter: loky 3.3, vendored by joblib
                   1.2, calls os.fork() then execve, so the host's size
                   matters to it as to fork; spawn starts its interpreter
                   with _posixsubprocess, which uses vfork). For forkserver
                   the fork server is already running (started by an
                   untimed first pool).
  sm_startup_cold  forkserver only: the same with the fork server stopped
                   before each round, so that the call also starts it.
  sm_respawn       A worker replaced by the pool itself, between two calls:
                   an executor of 1 worker with max_tasks_per_child=1, from
                   the result of one no-op (whose worker then exits) to the
                   result of the next no-op, submitted at once, which has to
                   wait for the replacement. ProcessPoolExecutor refuses
                   max_tasks_per_child with fork and loky has no such option:
                   for them a NOTE says n/a and why (the refusal is asked of
                   the library each time, not assumed).
  sm_rebuild       A worker that dies (SIGKILL from its own task) breaks a
                   ProcessPoolExecutor (BrokenProcessPool) and a loky
                   executor (TerminatedWorkerError): the pool does not replace
                   the worker, the user builds a new executor. From the
                   broken call's exception to the first no-op result of the
                   replacement (ProcessPoolExecutor: a new one of 2 workers;
                   loky: get_reusable_executor(), which rebuilds itself). The
                   time the pool takes to notice the death is not included.

and, for reference, what a bare os.fork() costs at each heap size (system
python-bare-fork), the child calling os._exit(0) at once:

  sm_fork_return   os.fork() until it returns in the parent.
  sm_fork_wait     os.fork() until waitpid() has reaped the child.
  sm_host_rss      the host's resident set size while it holds the heap
                   (MiB, read before the bare forks).

Each value is the median of this run's samples (--samples, 7 by default; the
bare fork takes 5x as many). Samples of the pools are interleaved: each round
measures every system once, so that noise from other work on the machine
spreads over all of them. Values are in milliseconds (sm_host_rss: MiB).

Output, on stdout, follows executor_bench.py's protocol (tab-separated):

    R     <system> <figure> <param> <round> <value>
    NOTE  <system> <figure> <text>
    SKIP  <system> <reason>

with <system> one of python-fork, python-forkserver, python-spawn,
python-loky, python-bare-fork; <figure> one of the sm_* names above; <param>
the host's extra heap, 10MiB or 1GiB; <round> the --round argument. Progress
goes to stderr. Usage:

    start_methods.py [--round R] [--samples N] [--quick]
"""
import argparse
import gc
import importlib
import math
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    # Workers unpickle `pp_tasks.<name>`; spawn, forkserver and loky send
    # them this sys.path, fork inherits it.
    sys.path.insert(0, HERE)

import pp_tasks  # noqa: E402  (needs the sys.path entry above)
from executor_bench import import_loky, stop_resource_tracker  # noqa: E402  (the same helpers)

MIB = 1 << 20
HEAPS = (("10MiB", 10 * MIB), ("1GiB", 1024 * MIB))
PAGE = 4096
WORKERS = 2
BARE_FORK_FACTOR = 5  # bare forks are cheap: take more samples of them


def median(values):
    """Nearest-rank median, as percentile(0.5) in bench_util.hpp."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.5 * len(ordered)), 1) - 1]


def ms_since(start_ns):
    return (time.perf_counter_ns() - start_ns) / 1e6


class Reporter:
    """Writes R/NOTE/SKIP lines to stdout, progress to stderr."""

    def __init__(self, round_no):
        self.round = round_no

    def record(self, system, figure, param, value):
        print("\t".join(("R", system, figure, param, str(self.round), f"{value:.4f}")), flush=True)

    def note(self, system, figure, text):
        print("\t".join(("NOTE", system, figure, text)), flush=True)

    def skip(self, system, reason):
        print("\t".join(("SKIP", system, reason)), flush=True)

    @staticmethod
    def progress(text):
        load = os.getloadavg()[0]
        print(f"start_methods: {text} (load {load:.1f})", file=sys.stderr, flush=True)


def hold_heap(size):
    """A bytearray of `size` bytes with every page written (so resident)."""
    heap = bytearray(size)
    heap[::PAGE] = b"\x01" * len(range(0, size, PAGE))
    return heap


def rss_mib():
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB


def first_result(ex):
    """Runs one no-op on `ex` and waits for it."""
    ex.submit(pp_tasks.noop).result()


class PpeSystem:
    """concurrent.futures.ProcessPoolExecutor with one multiprocessing context."""

    def __init__(self, method):
        self.method = method
        self.name = f"python-{method}"
        self.ctx = multiprocessing.get_context(method)

    def fresh(self, workers=WORKERS, **kwargs):
        return ProcessPoolExecutor(workers, mp_context=self.ctx, **kwargs)

    def respawn_pool(self):
        """An executor whose single worker serves one call, or raises why not."""
        return self.fresh(1, max_tasks_per_child=1)

    def broken_pool(self):
        """A warmed executor of 2 workers."""
        ex = self.fresh()
        first_result(ex)
        return ex

    def rebuild(self, broken):
        return self.fresh()

    @staticmethod
    def discard(ex):
        ex.shutdown(wait=True)

    def stop_fork_server(self):
        if self.method == "forkserver":
            multiprocessing.forkserver._forkserver._stop()


class LokySystem:
    """loky in its own start method (fork + exec of a fresh interpreter)."""

    name = "python-loky"

    def __init__(self, loky):
        self.loky = loky

    def fresh(self, workers=WORKERS, **kwargs):
        return self.loky.ProcessPoolExecutor(max_workers=workers, **kwargs)

    def respawn_pool(self):
        return self.fresh(1, max_tasks_per_child=1)

    def broken_pool(self):
        ex = self.loky.get_reusable_executor(max_workers=WORKERS)
        first_result(ex)
        return ex

    def rebuild(self, broken):
        """What a loky user calls: the reusable executor sees it is broken."""
        return self.loky.get_reusable_executor(max_workers=WORKERS)

    @staticmethod
    def discard(ex):
        ex.shutdown(wait=True, kill_workers=True)

    def stop_fork_server(self):
        """loky has no fork server."""

    def close(self):
        """Ends loky's resource tracker (multiprocessing's is ended by main)."""
        module = importlib.import_module(self.loky.__name__ + ".backend.resource_tracker")
        stop_resource_tracker(module._resource_tracker)


class Refused(Exception):
    """The library does not accept max_tasks_per_child=1 in this start method."""


def sample_startup(system, cold=False):
    if cold:
        system.stop_fork_server()
    start = time.perf_counter_ns()
    ex = system.fresh()
    first_result(ex)
    ms = ms_since(start)
    system.discard(ex)
    return ms


def sample_respawn(system, calls=2):
    """`calls` retire-to-served times of a max_tasks_per_child=1 worker.

    Raises Refused, with what the library raised, if it refuses the option.
    """
    try:
        ex = system.respawn_pool()
    except (ValueError, TypeError) as e:
        raise Refused(f"{type(e).__name__}: {e}") from e
    try:
        first_result(ex)  # the worker that will retire
        times = []
        for _ in range(calls):
            start = time.perf_counter_ns()  # the previous worker's result is in
            first_result(ex)
            times.append(ms_since(start))
        return times
    finally:
        system.discard(ex)


def sample_rebuild(system):
    broken = system.broken_pool()
    try:
        broken.submit(pp_tasks.kill_self).result()
    except BrokenProcessPool:
        start = time.perf_counter_ns()
    else:
        raise RuntimeError("kill_self returned")
    ex = system.rebuild(broken)
    first_result(ex)
    ms = ms_since(start)
    system.discard(ex)
    if ex is not broken:
        system.discard(broken)
    return ms


def bare_fork(samples):
    """(fork returned, child reaped) times of os.fork() + os._exit(0)."""
    returned, reaped = [], []
    for _ in range(samples):
        start = time.perf_counter_ns()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        returned.append(ms_since(start))
        os.waitpid(pid, 0)
        reaped.append(ms_since(start))
    return returned, reaped


def measure_heap(systems, label, samples, rep):
    """All figures with the host holding the heap named `label`."""
    found = {s.name: {"sm_startup": [], "sm_startup_cold": [], "sm_respawn": [], "sm_rebuild": []}
             for s in systems}
    refused = {}
    for i in range(samples):
        rotated = systems[i % len(systems):] + systems[:i % len(systems)]
        for system in rotated:
            figures = found[system.name]
            if system.name == "python-forkserver":
                figures["sm_startup_cold"].append(sample_startup(system, cold=True))
            figures["sm_startup"].append(sample_startup(system))
            if system.name not in refused:
                try:
                    figures["sm_respawn"].extend(sample_respawn(system))
                except Refused as e:
                    refused[system.name] = str(e)
            figures["sm_rebuild"].append(sample_rebuild(system))
        rep.progress(f"heap {label}: round {i + 1}/{samples} done")
    for system in systems:
        for figure, values in found[system.name].items():
            if values:
                rep.record(system.name, figure, label, median(values))
                rep.progress(f"{system.name} {figure} heap={label}: median {median(values):.2f} ms "
                             f"of {len(values)} (min {min(values):.2f}, max {max(values):.2f})")
        if system.name in refused:
            rep.note(system.name, "sm_respawn", f"n/a: max_tasks_per_child=1 refused ({refused[system.name]})")


def warm_up(systems):
    """One untimed pool per system: starts the fork server and resource trackers."""
    for system in systems:
        system.discard(system.broken_pool())


def run(systems, samples, rep):
    warm_up(systems)
    for system in systems:
        if getattr(system, "method", "fork") != "fork":
            rep.note(system.name, "sm_startup", "ProcessPoolExecutor starts these workers on demand: "
                     "the first call starts one of the 2")
    rep.note("python-bare-fork", "sm_fork_wait", "os.fork(), child os._exit(0), parent waitpid(); "
             f"transparent huge pages: {thp_mode()}")
    for label, size in HEAPS:
        heap = hold_heap(size)
        rss = rss_mib()
        rep.record("python-bare-fork", "sm_host_rss", label, rss)
        rep.progress(f"holding {label} (RSS {rss:.0f} MiB)")
        returned, reaped = bare_fork(samples * BARE_FORK_FACTOR)
        rep.record("python-bare-fork", "sm_fork_return", label, median(returned))
        rep.record("python-bare-fork", "sm_fork_wait", label, median(reaped))
        rep.progress(f"bare fork heap={label}: returns after {median(returned):.3f} ms, "
                     f"reaped after {median(reaped):.3f} ms")
        measure_heap(systems, label, samples, rep)
        del heap
        gc.collect()


def thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--round", type=int, default=1, help="round number written in R lines")
    parser.add_argument("--samples", type=int, default=7, help="samples per figure and heap (>= 1)")
    parser.add_argument("--quick", action="store_true", help="2 samples, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples = 2
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    return args


def main(argv):
    args = parse_args(argv)
    rep = Reporter(args.round)
    systems = [PpeSystem(m) for m in ("fork", "forkserver", "spawn")]
    loky_system = None
    try:
        loky_system = LokySystem(import_loky())
        systems.append(loky_system)
    except ImportError as e:
        rep.skip(LokySystem.name, f"loky cannot be imported ({e})")
    rep.progress(f"{sys.executable} {sys.version.split()[0]}, {args.samples} samples, "
                 f"{os.cpu_count()} CPUs")
    start = time.perf_counter_ns()
    try:
        run(systems, args.samples, rep)
        rep.progress(f"done in {ms_since(start) / 1e3:.0f} s")
        return 0
    except Exception:
        traceback.print_exc()
        return 1
    finally:
        multiprocessing.forkserver._forkserver._stop()
        stop_resource_tracker(multiprocessing.resource_tracker._resource_tracker)
        if loky_system is not None:
            loky_system.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
