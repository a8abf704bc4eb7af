"""Process-level tuning for long rewriting runs (opt-in; the library never calls it).

Large rewrites allocate and free many multi-megabyte NumPy temporaries.  By
default glibc gives such blocks straight back to the kernel (``munmap`` /
heap trimming), so the next temporary faults every 4 KiB page in again.  On
the firecracker VMs this project is measured on a minor fault costs ~3 us:
for a 1M-patch rewrite that is ~10k faults, about a third of the run.
`keep_freed_memory` asks glibc to keep freed memory in the process instead,
as allocators of numerical codes usually do.  The command line calls it at
start-up; tools embedding bpfpatch may call it too.
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

_done = False


def keep_freed_memory() -> bool:
    """Keep freed heap memory in the process (glibc only); True if applied.

    Every block comes from the heap instead of a fresh mapping (glibc cannot
    keep mappings above 32 MiB, and a million-instruction patch list has
    columns that size), and the heap is not trimmed back to the kernel.  Peak
    RSS is not higher (measured: lower, no mapping is copied to grow); RSS
    just does not shrink after a peak.
    """
    global _done
    if _done:
        return True
    try:
        # The process's own symbols include libc's: no find_library (it runs ldconfig in a subprocess).
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = all(mallopt(param, value) for param, value in
             ((_M_MMAP_THRESHOLD, 32 << 20), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 0x7FFFFFFF)))
    _done = ok
    return ok
