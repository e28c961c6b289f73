"""Upscale engines and the frame stream: tiles without seams, chunks with context that never crosses a cut,
resumed streams that compute exactly what an uninterrupted one did, strength, half precision on CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.models.resize import resize_frames
from vidgen.models.rrdbnet import build_rrdbnet
from vidgen.models.srvgg import build_srvgg
from vidgen.tasks.upscale.engine import NetworkEngine, make_engine
from vidgen.tasks.upscale.stream import ChunkedUpscaler, blend_strength


def frames(count: int = 2, height: int = 50, width: int = 70, seed: int = 0) -> np.ndarray:
    """Smooth random RGB frames (uint8)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, height // 5 + 1, width // 5 + 1, 3)).astype(np.uint8)
    return resize_frames(coarse, height, width, "bicubic")


def tiny_vgg(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_srvgg(num_feat=8, num_conv=2, upscale=2)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    return model.eval()


def engine(model: torch.nn.Module, **options) -> NetworkEngine:
    return NetworkEngine(model, model.capabilities, "cpu", **options)


def test_tiled_output_equals_untiled_for_a_network_within_the_margin() -> None:
    model = tiny_vgg()
    clip = frames(2, 50, 70)
    whole = engine(model).upscale(clip, 100, 140)
    tiled = engine(model, tile=32).upscale(clip, 100, 140)
    assert whole.std() > 10  # the network does something
    assert np.abs(tiled.astype(int) - whole).max() <= 1  # 3 px receptive field, 4 px margin: float rounding only


def test_tiles_of_a_deep_network_blend_without_seams() -> None:
    torch.manual_seed(0)
    model = build_rrdbnet(num_feat=8, num_block=1, num_grow_ch=4).eval()
    clip = frames(1, 48, 64)
    whole = engine(model).upscale(clip, 192, 256).astype(int)
    tiled = engine(model, tile=32).upscale(clip, 192, 256).astype(int)
    difference = np.abs(tiled - whole)
    assert difference.mean() < 0.5 and difference.max() <= 8  # its receptive field is wider than the margin


def test_per_frame_chunks_give_the_frames_the_network_gives() -> None:
    model = tiny_vgg()
    clip = frames(5, 20, 24)
    upscaler = ChunkedUpscaler(engine(model, batch_size=2), 40, 48)
    outputs = [o for frame in clip for o in upscaler.push(frame, payload=int(frame.sum()))] + upscaler.finish()
    assert [o.index for o in outputs] == list(range(5))
    with torch.no_grad():
        direct = model(torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255).clamp(0, 1)
    expected = (direct * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert all(np.array_equal(o.frame, e) for o, e in zip(outputs, expected))
    assert [o.payload for o in outputs] == [int(f.sum()) for f in clip]


class RecordingTemporal:
    """A temporal engine of scale 1 that returns the kept frames unchanged and records each window's frame ids
    (frame i is filled with the value i)."""

    uses_network = True
    device = "cpu"
    scale = 1

    def __init__(self, chunk: int = 3, context: int = 2) -> None:
        self.chunk, self.context = chunk, context
        self.windows: list[list[int]] = []

    def upscale(self, window, height, width, keep=None):
        self.windows.append([int(f[0, 0, 0]) for f in window])
        return window[keep]

    def peak_bytes(self, height, width):
        return 0


def push_all(upscaler: ChunkedUpscaler, count: int, cuts: set[int] = frozenset()) -> list:
    out = []
    for i in range(count):
        out += upscaler.push(np.full((2, 2, 3), i, np.uint8), cut=i in cuts, payload=i)
    return out + upscaler.finish()


def test_temporal_chunks_see_context_and_never_a_cut() -> None:
    recorder = RecordingTemporal(chunk=3, context=2)
    outputs = push_all(ChunkedUpscaler(recorder, 2, 2), 11, cuts={5})
    assert [o.index for o in outputs] == list(range(11)) and [o.payload for o in outputs] == list(range(11))
    assert all(int(o.frame[0, 0, 0]) == o.index for o in outputs)
    assert recorder.windows == [
        [0, 1, 2, 3, 4],  # chunk [0, 3) with two frames of context after it
        [1, 2, 3, 4],  # chunk [3, 5): cut short by the cut before frame 5, its context stays in the shot
        [5, 6, 7],  # chunk [5, 6): the rest of chunk 1, in the new shot, with two frames after it
        [5, 6, 7, 8, 9, 10],  # chunk [6, 9)
        [7, 8, 9, 10],  # chunk [9, 11), the end of the video
    ]


def test_a_resumed_stream_computes_what_the_uninterrupted_one_did() -> None:
    full = RecordingTemporal(chunk=3, context=2)
    push_all(ChunkedUpscaler(full, 2, 2), 12)
    resumed = RecordingTemporal(chunk=3, context=2)
    outputs = push_all(ChunkedUpscaler(resumed, 2, 2, discard_before=6), 12)
    assert [o.frame is None for o in outputs] == [True] * 6 + [False] * 6  # chunks before frame 6 are skipped
    assert resumed.windows == full.windows[2:]  # and the rest see exactly the same frames


def test_strength_blends_with_a_lanczos_resize() -> None:
    small = frames(1, 10, 12)
    model_frames = np.zeros((1, 20, 24, 3), np.uint8)
    lanczos = resize_frames(small, 20, 24, "lanczos")
    assert np.array_equal(blend_strength(model_frames, small, 1.0), model_frames)
    assert np.array_equal(blend_strength(model_frames, small, 0.0), lanczos)
    half = blend_strength(model_frames, small, 0.5).astype(int)
    assert np.abs(half - lanczos / 2).max() <= 0.5


def test_a_network_output_is_resized_exactly_to_any_target_and_16_bit_stays_16_bit() -> None:
    model = tiny_vgg()
    clip = frames(1, 10, 12)
    out = engine(model).upscale(clip, 15, 17)
    assert out.shape == (1, 15, 17, 3) and out.dtype == np.uint8
    deep = engine(model).upscale(clip.astype(np.uint16) * 257, 20, 24)
    eight = engine(model).upscale(clip, 20, 24).astype(int)
    assert deep.dtype == np.uint16 and np.abs((deep // 257).astype(int) - eight).max() <= 1


def test_weightless_resize_engine_takes_any_size() -> None:
    from vidgen.models.resize import ResizeUpscaler

    resize = make_engine(ResizeUpscaler("bicubic"), None, "cpu")  # type: ignore[arg-type]
    assert resize.uses_network is False and resize.scale is None
    assert resize.upscale(frames(3, 10, 12), 31, 29, keep=slice(1, 3)).shape == (2, 31, 29, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_half_precision_on_cuda_is_close_to_fp32(precision: str) -> None:
    model = tiny_vgg()
    clip = frames(2, 40, 48)
    reference = engine(model).upscale(clip, 80, 96).astype(int)
    half = NetworkEngine(model.cuda(), model.capabilities, "cuda", precision=precision, tile=32).upscale(clip, 80, 96)
    assert np.abs(half.astype(int) - reference).mean() < 1.0
