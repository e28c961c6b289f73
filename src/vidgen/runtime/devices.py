"""Device policy: resolve `auto|cpu|cuda[:N]` to a torch device, with a clear error when it is absent."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from vidgen.errors import DeviceError, UsageError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def resolve_device(name: str = "auto") -> Any:
    import torch

    name = (name or "auto").strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise UsageError(f"--device {name}: not a device", hint="use auto, cpu, cuda or cuda:N")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: no CUDA GPU is available here", hint="use --device cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps: Apple GPU support is not available here", hint="use --device cpu")
    return torch.device(name)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one CPU thread while the block lasts (process-wide).

    For many tiny ops (token-by-token sampling, small CNNs) thread hand-offs cost more than the arithmetic:
    ten times more on this project's busy 2-core machine. It also makes CPU results independent of the core
    count (summation order).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
