# SPDX-License-Identifier: MIT
"""Task functions that executor_bench.py runs in Python worker processes.

They live in their own module, at top level, so that a worker can unpickle a
reference to them (``pp_tasks.noop``) whatever the start method.
"""
import os
import signal
import time

# Loop count of lucky_number: the same 1,000,000 iterations as the C++ task, so
# the two suites compare the pools on identical work. In CPython 3.11 one call
# takes about 25-35 ms (Debian's 3.11.2: 25 ms, a pyenv 3.11.7: 33 ms), long
# enough that the pool's overhead is negligible next to it when measuring
# scaling.
ITER = 1_000_000

# How often block_until looks for its file, in seconds.
_POLL_S = 0.001


def noop():
    """Does nothing: the call costs only the pool's round trip."""


def noop_arg(i):
    """One-argument no-op, for Executor.map."""


def echo(b):
    """Returns its argument: the payload crosses the process boundary twice."""
    return b


def lucky_number(n, iterations=ITER):
    """The CPU-bound task: a pure-Python loop of `iterations` steps."""
    s = 0
    for i in range(iterations):
        s += i * n
    return s


def sleep_ms(ms):
    """Keeps a worker busy for `ms` milliseconds without using the CPU."""
    time.sleep(ms / 1000)


def pid_after(ms):
    """Sleeps `ms` milliseconds, then tells which worker ran the call."""
    sleep_ms(ms)
    return os.getpid()


def kill_self():
    """A worker crashing mid-task: it dies by SIGKILL and never answers."""
    os.kill(os.getpid(), signal.SIGKILL)


def block_until(path, timeout_s=120):
    """Keeps a worker busy until `path` exists; returns False on timeout.

    The timeout only guards against a worker outliving a host that died
    before creating the file.
    """
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True
