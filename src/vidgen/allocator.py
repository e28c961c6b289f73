"""glibc's malloc told to keep freed frame-sized blocks for reuse (`keep_freed_memory`).

Video work makes and drops the same few megabyte-sized arrays every frame. With glibc's defaults each
one is a fresh mmap (or the top of the heap is given back on free), so its pages are faulted in and
zero-filled one by one on every frame: system time was 10 s of a 27 s `vidgen interpolate --fast` run at
640x360 (1 s with this), and for RIFE's eager port at 720p about 400k faults and 1 s per pair.
"""

from __future__ import annotations

import os
import sys
import threading

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, <malloc.h>
# Older glibc refuses an mmap threshold above half its largest heap (32 MiB on 64-bit); newer ones take more.
_PORTABLE_MMAP_THRESHOLD = 32 << 20
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_set = {_M_MMAP_THRESHOLD: 0, _M_TRIM_THRESHOLD: 0}


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Serve blocks under `mmap_threshold` bytes from malloc's heap and keep up to `trim_threshold` of it free.

    Process-wide: the CLI calls it for every command (a 1080p float32 RGB frame is 25 MB, under the
    default threshold), RIFE's fused CPU path raises it for its multi-hundred-megabyte tensors; a program
    embedding vidgen may call it too. Thresholds only ever rise. Peak memory grows by about one
    iteration's working set (+70 MB for `--fast` at 640x360). Does nothing (False) off glibc, or when
    the user tuned malloc themselves (MALLOC_*_ variables or GLIBC_TUNABLES).
    """
    if not sys.platform.startswith("linux") or any(name in os.environ for name in _USER_SETTINGS):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018  # glibc only (musl's mallopt ignores everything)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    with _lock:
        done = True
        for parameter, wanted in ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold)):
            if wanted <= _set[parameter]:
                continue
            accepted = mallopt(parameter, wanted) or (
                parameter == _M_MMAP_THRESHOLD and wanted > _PORTABLE_MMAP_THRESHOLD > _set[parameter]
                and mallopt(parameter, wanted := _PORTABLE_MMAP_THRESHOLD))
            if accepted:
                _set[parameter] = wanted
            done = done and bool(accepted)
        return done
