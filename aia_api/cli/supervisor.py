"""Child processes run together: output prefixed, restarted with backoff, stopped in order."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TextIO

from aia_api.cli import orphan_guard

__all__ = ["Backoff", "Supervisor"]

# After a stop, how long output still in the pipes is copied before giving up on it.
_DRAIN_SECONDS = 2.0
# Output without a newline is printed in pieces of this many bytes.
_LONGEST_LINE = 65536


@dataclass
class Backoff:
    """Seconds to wait before restarting a process that exited.

    The wait starts at ``first_seconds`` and doubles up to ``max_seconds`` while
    the process keeps dying young; a run that lasted ``settled_seconds`` starts
    the count again.
    """

    first_seconds: float = 1.0
    max_seconds: float = 30.0
    settled_seconds: float = 60.0
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.first_seconds

    def after_run(self, uptime_seconds: float) -> float:
        """The wait before the next start, for a run that lasted ``uptime_seconds``."""
        if uptime_seconds >= self.settled_seconds:
            self._next = self.first_seconds
        delay = self._next
        self._next = min(delay * 2, self.max_seconds)
        return delay


@dataclass
class _Child:
    name: str
    argv: tuple[str, ...]
    backoff: Backoff
    # On top of the supervisor's environment, for this process alone.
    env: Mapping[str, str] = field(default_factory=dict)
    popen: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None


@dataclass
class _Stream:
    name: str
    pipe: IO[bytes]
    partial: bytes = b""


class Supervisor:
    """Starts named processes, prefixes their output, restarts them, stops them all.

    Everything runs on the calling thread, which must be the main one: the
    kernel signals a child when the thread that forked it exits
    (PR_SET_PDEATHSIG), once per exiting thread that held it, so one thread
    means children forked from nowhere else and one SIGTERM each when
    ``aia dev`` dies.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        prog: str,
        stop_last: Collection[str] = (),
        out: TextIO | None = None,
        err: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.env = dict(env)
        self._prog = prog
        self._stop_last = frozenset(stop_last)
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._clock = clock
        self._children: list[_Child] = []
        self._selector = selectors.DefaultSelector()
        self._width = 16

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start ``argv`` as the process called ``name``, with ``env`` added to its environment.

        What only one process needs (Flower's password) goes in ``env``, so the
        others never hold it.
        """
        child = _Child(name, tuple(argv), Backoff(), dict(env or {}))
        self._children.append(child)
        self._spawn(child)

    def exited(self) -> tuple[str, int] | None:
        """The name and exit code of a process that has exited, if any."""
        for child in self._children:
            if child.popen is not None and child.popen.poll() is not None:
                return child.name, child.popen.returncode
        return None

    def pump(self, seconds: float) -> None:
        """Copy the processes' output, prefixed with their names, for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not self._selector.get_map():
                time.sleep(left)
                return
            for key, _ in self._selector.select(left):
                self._read(key.data)

    def tend(self) -> None:
        """Schedule the restart of processes that exited; start those whose wait is over."""
        now = self._clock()
        for child in self._children:
            if child.popen is None:
                continue
            if child.restart_at is None:
                code = child.popen.poll()
                if code is None:
                    continue
                # A dead worker's pool children would keep running its tasks.
                _kill_group(child.popen.pid)
                delay = child.backoff.after_run(now - child.started_at)
                child.restart_at = now + delay
                self.say(
                    f"{self._prog}: {child.name} exited with {code}; restarting in {delay:g} s",
                    err=True,
                )
            elif now >= child.restart_at:
                self.say(f"{self._prog}: restarting {child.name}", err=True)
                self._spawn(child)

    def stop(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM every process, the ``stop_last`` ones after the rest; SIGKILL after the grace."""
        first = [c for c in self._children if c.name not in self._stop_last]
        last = [c for c in self._children if c.name in self._stop_last]
        self._stop(first, grace_seconds)
        self._stop(last, grace_seconds)
        deadline = time.monotonic() + _DRAIN_SECONDS
        while self._selector.get_map() and time.monotonic() < deadline:
            self.pump(0.1)

    def say(self, text: str, *, err: bool = False) -> None:
        """Print a line; once the terminal is gone (SIGHUP) the line is dropped."""
        stream = self._err if err else self._out
        with contextlib.suppress(OSError, ValueError):
            stream.write(text + "\n")
            stream.flush()

    def _spawn(self, child: _Child) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("start processes from the main thread: they die with their thread")
        guarded = [sys.executable, "-I", orphan_guard.__file__, str(os.getpid()), *child.argv]
        child.popen = subprocess.Popen(
            guarded,
            env={**self.env, **child.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: Ctrl-C reaches only us, and we stop children in order.
            start_new_session=True,
        )
        child.started_at = self._clock()
        child.restart_at = None
        assert child.popen.stdout is not None
        os.set_blocking(child.popen.stdout.fileno(), False)
        self._selector.register(
            child.popen.stdout, selectors.EVENT_READ, _Stream(child.name, child.popen.stdout)
        )

    def _read(self, stream: _Stream) -> None:
        try:
            chunk = os.read(stream.pipe.fileno(), 65536)
        except BlockingIOError:
            return
        if chunk:
            *lines, stream.partial = (stream.partial + chunk).split(b"\n")
            if len(stream.partial) > _LONGEST_LINE:
                lines.append(stream.partial)
                stream.partial = b""
        else:
            lines = [stream.partial] if stream.partial else []
            self._selector.unregister(stream.pipe)
            stream.pipe.close()
        for raw in lines:
            self.say(f"{stream.name:<{self._width}}| {raw.decode(errors='replace').rstrip()}")

    def _stop(self, children: Sequence[_Child], grace_seconds: float) -> None:
        running = [c.popen for c in children if c.popen is not None and c.popen.poll() is None]
        for popen in running:
            popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        # Keep copying output meanwhile: a child blocked on a full pipe never exits.
        while any(p.poll() is None for p in running) and time.monotonic() < deadline:
            self.pump(0.1)
        for popen in running:
            if popen.poll() is None:
                _kill_group(popen.pid)
                popen.wait()
        for child in children:
            # Only groups reaped just now: an older one's number may belong to another by now.
            if child.popen is not None and child.restart_at is None:
                _kill_group(child.popen.pid)


def _kill_group(pgid: int) -> None:
    # Each child leads a session of its own, so its group is it and what it forked.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
