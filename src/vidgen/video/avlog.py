"""FFmpeg's threads must never wait for Python: PyAV's Python log callback is kept off.

With a log level set (`av.logging.set_level(...)`; torchvision up to at least 0.23 sets ERROR when it is
imported), every FFmpeg log line is handed to Python, and the thread that logs takes the GIL. Decoders
and encoders run threads of their own; one that logs while the thread holding the GIL frees its codec
(PyAV's deallocator waits for FFmpeg's threads to finish) deadlocks the process. Seen with the lowest
versions pyproject.toml allows (torchvision 0.20): `vidgen eval reconstruct` hung for ever in
`avcodec_free_context` after its x264 baseline stopped reading a clip early. vidgen turns the callback
off (FFmpeg's messages are dropped, PyAV's default) before it opens anything FFmpeg may thread.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def keep_av_logging_off() -> None:
    """Turn PyAV's Python log callback off if something turned it on (see the module notes). Cheap."""
    import av.logging

    level = av.logging.get_level()
    if level is not None:
        av.logging.set_level(None)
        log.debug("PyAV's log level was %s (torchvision sets it on import): turned off, as FFmpeg's "
                  "threads would deadlock waiting for Python", level)
