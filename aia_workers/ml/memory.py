"""A cap on the memory an ``ml`` task may allocate, enforced by the kernel.

``RLIMIT_DATA`` (Linux 4.7 and later) bounds a process's private writable
mappings: its heap, every anonymous ``mmap``, the arrays numpy and torch
allocate. An allocation past it fails at once and comes back as MemoryError
(numpy, Python) or a RuntimeError saying it "can't allocate memory" (torch):
the task fails and the process lives on. ``RLIMIT_AS`` would count the address
space libraries merely reserve (torch and OpenBLAS reserve gigabytes they never
touch) and refuse work that fits easily; a watchdog reading RSS would act only
after the host was already short. Measured on an ml worker process with torch,
scikit-learn and statsmodels loaded: about 600 MiB of data mappings, 1.4 GiB of
address space.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

__all__ = ["cap_memory", "data_bytes", "is_out_of_memory"]

log = logging.getLogger(__name__)

_MIB = 1024 * 1024


def data_bytes() -> int | None:
    """This process's private data mappings (``VmData``) in bytes; None off Linux."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return None


def cap_memory(extra_mb: int) -> int | None:
    """Let this process allocate at most ``extra_mb`` MiB beyond what it holds now.

    Returns the limit set, in bytes, or None when ``extra_mb`` is 0 or the
    platform cannot say what the process holds. Children inherit the limit.
    """
    if extra_mb <= 0:
        return None
    held = data_bytes()
    if held is None:
        log.warning("no /proc/self/status: ml tasks run without a memory cap")
        return None
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = held + extra_mb * _MIB
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    return limit


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the errors an allocation refused under the cap raises."""
    if isinstance(exc, MemoryError):
        return True
    # torch reports a refused allocation as a RuntimeError from its CPU allocator.
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
