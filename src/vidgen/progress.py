"""The one progress-callback type of the library: `progress(done, total)` is called as work advances, with
the units done so far (output frames, denoising steps) and the total when it is known (None otherwise)."""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[int, int | None], None]
