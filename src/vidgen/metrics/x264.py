"""x264 at a tokenizer's bit count: the honest classical reference `vidgen eval reconstruct` reports beside it.

The frames the model was scored on (same decode, same RGB conversion, same --max-frames) go into yuv420p through the stream's
matrix and range (the inverse of the RGB conversion; odd sizes padded to even by repeating the edge and
cropped after decoding), are encoded in memory by libx264 (no container, no temp file), decoded back to
RGB the same way and scored by `FrameScores` like the model. 4:2:0 chroma subsampling is part of x264's
budget: it codes 1.5 samples per pixel where the model saw 3.

Settings: preset medium with tune psnr (the scores are PSNR and SSIM), the diamond motion search (its
output does not depend on uninitialised memory), one thread and no lookahead thread (x264's output depends
on its thread count). Rate control: the largest stream that fits the model's bits, found by a search over
CRF on a 0.25 grid (then constant QP 52-69 when CRF 51 is still too big); it stops within 3% under the
target. The size counted is the stream's packets, SPS/PPS included, minus x264's user-data SEI (its
version banner); the decoder is fed exactly the bytes counted. Why: docs/design.md, "x264 baseline".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from vidgen.errors import UnsupportedVideoError
from vidgen.metrics import FrameScores
from vidgen.video.avlog import keep_av_logging_off
from vidgen.video.colour import frame_to_rgb
from vidgen.video.reader import VideoInfo, read_rgb_frames

X264_OPTIONS = {"preset": "medium", "tune": "psnr", "threads": "1", "x264-params": "sync-lookahead=0:me=dia"}
_CRF_STEP = 0.25
_CRF_MAX = 51.0
_QP_MAX = 69
_X264_ENCODES = 10  # CRF tries at most; close enough once a fit is within 3% of the target
_SEI_USER_DATA = 5


def _without_banner(access_unit: bytes) -> bytes:
    """An Annex B access unit minus SEI NAL units carrying user data (x264's version and options banner)."""
    starts = []
    position = access_unit.find(b"\x00\x00\x01")
    while position >= 0:
        starts.append(position)
        position = access_unit.find(b"\x00\x00\x01", position + 3)
    kept = bytearray(access_unit[:starts[0]] if starts else access_unit)
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(access_unit)
        header = access_unit[start + 3:start + 5]
        is_banner = len(header) == 2 and header[0] & 0x1F == 6 and header[1] == _SEI_USER_DATA
        if not is_banner:
            kept += access_unit[start:end]
    return bytes(kept)


def _even(rgb: np.ndarray) -> np.ndarray:
    rows, columns = rgb.shape[0] % 2, rgb.shape[1] % 2
    return np.pad(rgb, ((0, rows), (0, columns), (0, 0)), mode="edge") if rows or columns else rgb


def _encode(info: VideoInfo, max_frames: int | None, options: dict[str, str]) -> list[bytes]:
    """The evaluated frames through libx264 in memory: the access units as counted (see above)."""
    import av

    from vidgen.video.colour import rgb_to_frame

    keep_av_logging_off()
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = info.width + info.width % 2, info.height + info.height % 2
    encoder.pix_fmt = "yuv420p"
    encoder.time_base = 1 / info.frame_rate
    encoder.framerate = info.frame_rate
    info.colour.tag_codec_context(encoder)
    encoder.options = {**X264_OPTIONS, **options}
    units: list[bytes] = []
    for index, rgb in enumerate(read_rgb_frames(info, max_frames)):
        frame = rgb_to_frame(_even(rgb), "yuv420p", info.colour)
        frame.pts = index
        units += [_without_banner(bytes(packet)) for packet in encoder.encode(frame)]
    units += [_without_banner(bytes(packet)) for packet in encoder.encode(None)]
    return units


def _fit(encode: Callable[[dict[str, str]], list[bytes]],
              target_bytes: float) -> tuple[dict[str, str], list[bytes], bool]:
    """(options, access units, fits): the largest stream tried that fits `target_bytes`, searching CRF and,
    when CRF 51 does not fit, constant QP 52-69; when nothing fits, the smallest stream tried."""
    fit: tuple[int, dict[str, str], list[bytes]] | None = None  # the largest stream that fits so far
    floor: tuple[int, dict[str, str], list[bytes]] | None = None  # the smallest that does not

    def attempt(options: dict[str, str]) -> int:
        nonlocal fit, floor
        units = encode(options)
        size = sum(map(len, units))
        if size <= target_bytes:
            if fit is None or size > fit[0]:
                fit = (size, options, units)
        elif floor is None or size < floor[0]:
            floor = (size, options, units)
        return size

    sizes: dict[float, int] = {}
    crf, reach, last_width = 26.0, 1.0, math.inf
    for _ in range(_X264_ENCODES):
        sizes[crf] = attempt({"crf": f"{crf:g}"})
        if target_bytes * 0.97 <= sizes[crf] <= target_bytes:
            break
        under = min((c for c in sizes if sizes[c] <= target_bytes), default=None)  # the lowest CRF that fits
        over = max((c for c in sizes if sizes[c] > target_bytes and (under is None or c < under)), default=None)
        low = over + _CRF_STEP if over is not None else 0.0
        high = under - _CRF_STEP if under is not None else _CRF_MAX
        if low > high:
            break
        if under is not None and over is not None:
            width = under - over
            span = math.log(sizes[over] / max(sizes[under], 1))
            if width > last_width / 2 or span <= 0:  # interpolation is creeping along one end: bisect
                guess = (over + under) / 2
            else:  # log size is close to linear in CRF within a bracket
                guess = over + math.log(sizes[over] / target_bytes) / span * width
            last_width = width
        else:  # size about halves every 6 CRF; the step doubles while the target stays out of reach
            guess = crf + reach * 6 * math.log2(max(sizes[crf], 1) / target_bytes)
            reach *= 2
        crf = min(max(round(guess / _CRF_STEP) * _CRF_STEP, low), high)
        if crf in sizes:
            crf = min(max(round((low + high) / 2 / _CRF_STEP) * _CRF_STEP, low), high)
            if crf in sizes:
                break
    if fit is None and _CRF_MAX not in sizes:
        attempt({"crf": f"{_CRF_MAX:g}"})
    if fit is None:  # beyond CRF 51: bisect constant QP for the lowest that fits
        low, high = int(_CRF_MAX) + 1, _QP_MAX
        while low <= high:
            qp = (low + high) // 2
            if attempt({"qp": str(qp)}) <= target_bytes:
                high = qp - 1
            else:
                low = qp + 1
    _, options, units = fit or floor  # type: ignore[misc]
    return options, units, fit is not None


def x264_at_bits(info: VideoInfo, max_frames: int | None, frames: int, target_bits: float) -> dict[str, Any]:
    """The x264 fields of an evaluation row: x264 at `target_bits` for the evaluated frames, scored."""
    import av

    if "libx264" not in av.codecs_available:
        return {"x264_psnr": None, "x264_ssim": None, "x264_bits_per_pixel": None, "x264_settings": None,
                "x264_note": "this PyAV build has no libx264 encoder"}
    pixels = frames * info.height * info.width
    options, units, fits = _fit(lambda opts: _encode(info, max_frames, opts), target_bits / 8)
    keep_av_logging_off()
    decoder = av.CodecContext.create("h264", "r")
    decoded = [frame for unit in units for frame in decoder.decode(av.Packet(unit))]
    decoded += decoder.decode(None)
    scores = FrameScores()
    for original, frame in zip(read_rgb_frames(info, max_frames), decoded):
        scores.add(original, frame_to_rgb(frame, info.colour)[:info.height, :info.width])
    if len(scores.psnr) != frames:
        raise UnsupportedVideoError(f"{info.path}: x264 gave back {len(decoded)} frames of {frames}")
    psnr, ssim = scores.means()
    achieved = round(sum(map(len, units)) * 8 / pixels, 6)
    settings = " ".join(f"{key}={value}" for key, value in {**X264_OPTIONS, **options}.items())
    note = None
    if not fits:
        note = (f"x264 cannot go down to {target_bits / pixels:.4g} bits per pixel on these frames (tried CRF "
                f"up to {_CRF_MAX:g}, QP up to {_QP_MAX}); its smallest stream is reported")
    return {"x264_psnr": psnr, "x264_ssim": ssim, "x264_bits_per_pixel": achieved, "x264_settings": settings,
            "x264_note": note}
