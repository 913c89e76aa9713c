"""Run a command that goes down with the process that started it.

``python orphan_guard.py [--poll] PARENT_PID COMMAND [ARG...]`` is how ``aia dev``
starts each child, so that ``aia dev`` dying in any way (SIGKILL, a closed
terminal) sends SIGTERM to its children instead of leaving them behind holding
ports. On Linux the guard asks the kernel for that signal and replaces itself
with the command; elsewhere (or with ``--poll``) it stays as the command's
parent, forwards signals to it, and checks every second that its own parent is
still there.

The file imports only the standard library: it is run by path, so that it
starts without importing AIA.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

__all__ = ["main"]

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_SECONDS = 1.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_USAGE = "usage: orphan_guard.py [--poll] PARENT_PID COMMAND [ARG...]"


def main(argv: Sequence[str]) -> int:
    """Run ``COMMAND`` until it exits or the process ``PARENT_PID`` is gone; its exit code."""
    poll = bool(argv) and argv[0] == "--poll"
    rest = argv[1:] if poll else argv
    if len(rest) < 2 or not rest[0].isdigit():
        print(_USAGE, file=sys.stderr)
        return 2
    parent, command = int(rest[0]), list(rest[1:])
    if not poll and _signal_me_when_parent_dies():
        # The parent may have died between our fork and prctl: no signal would come.
        if os.getppid() != parent:
            return 1
        try:
            os.execvp(command[0], command)  # noqa: S606 - argv from aia dev, no shell
        except OSError as exc:
            print(f"orphan_guard: cannot run {command[0]}: {exc}", file=sys.stderr)
            return 127
    return _run_while_parent_lives(parent, command)


def _signal_me_when_parent_dies() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    # Kept across execve, so the command itself gets SIGTERM when the thread
    # that started us exits (aia dev starts children from its main thread only).
    return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)) == 0


def _run_while_parent_lives(parent: int, command: Sequence[str]) -> int:
    if os.getppid() != parent:
        return 1
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"orphan_guard: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    stopping = False
    while True:
        try:
            code = child.wait(_POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if not stopping and os.getppid() != parent:
                child.terminate()
                stopping = True
    if code < 0:
        # Die the same way, so whoever watches us sees the command's own signal.
        with contextlib.suppress(OSError):  # SIGKILL and SIGSTOP keep their default
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
