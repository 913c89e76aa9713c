"""The ``diagnostics.worker_crash`` workload: end the calling process, free of Celery.

It stands in for the work that takes its process down with it (a native
library's segfault, the OOM killer, a stray ``os._exit``), so that what
happens to such a task can be watched end to end.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from typing import NoReturn

from aia_workers.diagnostics.payloads import CrashMode

__all__ = ["EXIT_CODE", "crash_process"]

# EX_SOFTWARE from sysexits.h: "an internal software error has been detected".
EXIT_CODE = 70


def crash_process(mode: CrashMode) -> NoReturn:
    """End this process at once, as ``mode`` says; never returns.

    ``exit`` leaves with EXIT_CODE and runs no cleanup, ``segfault`` reads
    address 0 and ``abort`` raises SIGABRT.
    """
    # A deliberate crash has nothing to debug: no core file per run.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if mode == "segfault":
        ctypes.string_at(0)
        # Unreachable unless address 0 is mapped; end the same way regardless.
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "abort":
        os.abort()
    os._exit(EXIT_CODE)
