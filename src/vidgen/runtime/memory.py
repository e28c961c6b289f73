"""Will the job fit in memory? A per-pixel estimate checked before anything is written.

The estimate is the memory a job needs on top of what the process holds once the model is loaded
(that is already spent, so it is compared with what the system still has available):

    network  = window pixels x pairs at once x (NETWORK_FULL + NETWORK_SCALED x scale^2)
    per call = frame pixels x PER_EXTRA_TIME x (times per pair - 1)
    per pair = frame pixels x batch size x (PER_PAIR + PER_PAIR_TIME x times per pair)
    buffers  = frame pixels x (reader queue + writer queue + encoder) x bytes per queued frame

"Frame pixels" are the padded frame's, "window pixels" one tile's (`--tile`) or the padded frame's;
pairs at once is 1 on CPU (the fused path runs a batch pair by pair) and the batch size on CUDA.
Weightless engines (blend, classical flow) have no network term; their whole-frame float work is
WEIGHTLESS_PER_PAIR per pixel and pair. The constants are an envelope over peak-RSS measurements of
IFNet (RIFE's 90 channels, fused fp32 CPU path) on a 2-core CPU: `python -m benchmarks.memory_calibration`
re-measures them (docs/design.md lists the figures). CUDA uses the same constants, not yet checked
on a GPU; fp16 autocast there needs less than estimated.

Out-of-memory errors at run time (torch.OutOfMemoryError, a RuntimeError saying "out of memory" or
"not enough memory", MemoryError) become the same one-line `InsufficientMemoryError`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Any

from vidgen.errors import InsufficientMemoryError

# Bytes per pixel, see the module docstring and docs/design.md.
NETWORK_FULL = 100
NETWORK_SCALED = 1120
PER_EXTRA_TIME = 100
PER_PAIR = 100
PER_PAIR_TIME = 40
WEIGHTLESS_PER_PAIR = 160
COMBINER_PER_PIXEL = 200  # a combiner of candidates (vidgen.models.ensemble): its float inputs and features
# Queued frames: the reader's 2 x batch + 2 (decoded frame and its RGB, up to 16-bit), the writer's 16,
# and about 40 held by an encoder's lookahead and references (x264 medium).
QUEUED_FRAME_BYTES = 9
WRITER_QUEUE = 16
ENCODER_FRAMES = 40

_OOM_MESSAGES = ("out of memory", "not enough memory")


def network_peak_bytes(frame_pixels: int, window_pixels: int, scale: float, batch_size: int,
                       pairs_at_once: int, times_per_pair: int) -> int:
    """Peak memory of one call of a midpoint network (bisection and retiming included)."""
    network = window_pixels * pairs_at_once * (NETWORK_FULL + NETWORK_SCALED * scale * scale)
    per_call = frame_pixels * PER_EXTRA_TIME * max(times_per_pair - 1, 0)
    per_pair = frame_pixels * batch_size * (PER_PAIR + PER_PAIR_TIME * times_per_pair)
    return int(network + per_call + per_pair)


def weightless_peak_bytes(height: int, width: int, batch_size: int, times_per_pair: int) -> int:
    """Peak memory of a weightless engine's call: whole-frame float work per pair, and its outputs."""
    return height * width * batch_size * (WEIGHTLESS_PER_PAIR + 3 * times_per_pair)


def buffer_bytes(height: int, width: int, batch_size: int) -> int:
    """Frames queued between the reader, the model and the encoder."""
    return height * width * QUEUED_FRAME_BYTES * (2 * batch_size + 2 + WRITER_QUEUE + ENCODER_FRAMES)


def job_peak_bytes(engine: Any, height: int, width: int, batch_size: int, times_per_pair: int) -> int:
    """The engine's own estimate of a call (`peak_bytes`), plus the frames queued around it."""
    return int(engine.peak_bytes(height, width, batch_size, times_per_pair)) + buffer_bytes(height, width, batch_size)


def times_per_pair(ratio: Any) -> int:
    """Interpolated frames between two source frames at an output/input rate ratio (a Fraction)."""
    return max(1, math.ceil(ratio) - (1 if ratio.denominator == 1 else 0))


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _sysconf_available() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def available_bytes(device: Any = None) -> int | None:
    """Memory the job can still use: free GPU memory for CUDA, else MemAvailable (None: unknown)."""
    if device is not None and getattr(device, "type", str(device)) == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return _meminfo_available() or _sysconf_available()


def describe(size: int) -> str:
    return f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.0f} MB"


def _where(device: Any) -> str:
    return "GPU memory free" if device is not None and getattr(device, "type", str(device)) == "cuda" else "memory available"


def shortage_hint(network: bool, batch_size: int, scale: float, tile: int) -> str:
    """The options that lower the estimate for this job."""
    options = []
    if network and scale > 0.5:
        options.append("--scale 0.5")
    if network and (tile == 0 or tile > 256):
        options.append(f"--tile {1024 if tile == 0 or tile > 1024 else tile // 2}")
    if batch_size > 1:
        options.append(f"a smaller --batch-size (now {batch_size})")
    if not options:
        return "free some memory or use a machine with more"
    return "try " + (", ".join(options[:-1]) + " or " + options[-1] if len(options) > 1 else options[0])


@contextlib.contextmanager
def memory_errors(what: str, estimate: int, device: Any, hint: str) -> Iterator[None]:
    """Turn an out-of-memory failure inside the block into an InsufficientMemoryError."""
    try:
        yield
    except Exception as err:
        if not is_out_of_memory(err):
            raise
        available = available_bytes(device)
        have = f", {describe(available)} {_where(device)} now" if available is not None else ""
        raise InsufficientMemoryError(f"{what}: ran out of memory (estimated peak {describe(estimate)}{have})",
                                      hint=hint) from None


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    oom_type = _torch_oom_type()
    if oom_type is not None and isinstance(err, oom_type):
        return True
    return isinstance(err, RuntimeError) and any(text in str(err).lower() for text in _OOM_MESSAGES)


def _torch_oom_type() -> type | None:
    import sys

    torch = sys.modules.get("torch")  # only when torch is in use; never imported here for this
    return getattr(torch, "OutOfMemoryError", None) if torch is not None else None


def check_fits(what: str, estimate: int, device: Any, hint: str) -> None:
    """Raise InsufficientMemoryError when `estimate` bytes exceed what `device` has available."""
    available = available_bytes(device)
    if available is not None and estimate > available:
        raise InsufficientMemoryError(
            f"{what}: needs about {describe(estimate)} but only {describe(available)} {_where(device)}", hint=hint)
