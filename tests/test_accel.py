"""The fused IFNet fast path: same frames as the eager port, fallbacks, per-scale preparation, CUDA autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidgen.models.ifnet import IFNet
from vidgen.models import ifnet_fused as accel
from vidgen.models.ifnet_fused import FusedIFNet, prepare_for_inference
from vidgen.tasks.interpolate.engines import MidpointNetworkInterpolator

# The fused path sums the same products in another order (permuted input channels, scale factors and
# the average of the two passes folded into weights, Winograd transforms). Each of those moves a
# float32 result by ~1e-7 relative; through the cascade and three warps the frames of a random net
# move by < 1e-5 and the real RIFE weights at 720p by ~3e-5 (benchmarks/interpolate_speed.py).
# 1e-4 is 1/40 of an 8-bit level: at most a one-level flip where a value sits on a rounding edge.
TOLERANCE = 1e-4

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def moving_net(seed: int = 0) -> IFNet:
    """A narrow random IFNet whose flow heads are scaled up so it predicts flows of several pixels."""
    torch.manual_seed(seed)
    net = IFNet(channels=16).eval()
    with torch.no_grad():
        for block in (net.block0, net.block1, net.block2):
            block.conv1[-1].weight.mul_(30.0)
            block.conv2[-1].weight.mul_(5.0)
    return net


def pair(batch: int = 1, height: int = 64, width: int = 96, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    img0 = torch.rand(batch, 3, height, width, generator=generator)
    # A shifted copy plus noise: the second frame is the first one moved, like video.
    img1 = (torch.roll(img0, shifts=(2, 3), dims=(2, 3)) * 0.9 + 0.1 * torch.rand(img0.shape, generator=generator))
    return img0, img1


@pytest.mark.parametrize("scale", [1.0, 0.5, 2.0])
@pytest.mark.parametrize("batch", [1, 2])
@torch.inference_mode()
def test_fused_matches_eager(scale: float, batch: int) -> None:
    net = moving_net()
    img0, img1 = pair(batch=batch, height=128, width=192)
    frame, flow, mask = net.midpoint_with_flow(img0, img1, scale)
    assert flow.abs().max() > 2.0  # the comparison covers real warping, not identity grids
    fast = prepare_for_inference(net, "cpu")
    assert isinstance(fast, FusedIFNet)
    fast_frame, fast_flow, fast_mask = fast.midpoint_with_flow(img0, img1, scale)
    torch.testing.assert_close(fast_frame, frame, atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(fast_flow, flow, atol=20 * TOLERANCE, rtol=0)  # pixels, up to ~10
    torch.testing.assert_close(fast_mask, mask, atol=10 * TOLERANCE, rtol=0)
    torch.testing.assert_close(fast(img0, img1, scale), frame, atol=TOLERANCE, rtol=0)


@torch.inference_mode()
def test_fused_rejects_unpadded_input_like_the_port() -> None:
    fast = prepare_for_inference(moving_net(), "cpu")
    img0, img1 = pair(height=48, width=64)
    with pytest.raises(ValueError, match="multiples of 32"):
        fast(img0, img1)


@torch.inference_mode()
def test_winograd_path_matches_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    net = moving_net(seed=2)
    img0, img1 = pair(height=128, width=128, seed=3)
    reference = net(img0, img1)
    monkeypatch.setattr(accel, "WINOGRAD_MIN_PIXELS", 0)  # every feature map takes the NNPACK path
    fast = prepare_for_inference(net, "cpu")
    if fast.winograd:
        torch.testing.assert_close(fast(img0, img1), reference, atol=TOLERANCE, rtol=0)

    # NNPACK refusing an input: the call still succeeds (oneDNN), and later calls skip NNPACK.
    def refuse(*args: object) -> None:
        raise RuntimeError("NNPACK SpatialConvolution_updateOutput failed")

    monkeypatch.setattr(accel, "_winograd_conv", refuse)
    fast = prepare_for_inference(net, "cpu")
    fast.winograd = True
    torch.testing.assert_close(fast(img0, img1), reference, atol=TOLERANCE, rtol=0)
    assert fast.winograd is False

    # A PyTorch built without NNPACK: oneDNN from the start.
    monkeypatch.setattr(accel, "winograd_available", lambda: False)
    fast = prepare_for_inference(net, "cpu")
    assert fast.winograd is False
    torch.testing.assert_close(fast(img0, img1), reference, atol=TOLERANCE, rtol=0)


@torch.inference_mode()
def test_weights_are_prepared_once_per_scale() -> None:
    net = moving_net()
    fast = prepare_for_inference(net, "cpu")
    img0, img1 = pair(height=128, width=128)
    first = fast(img0, img1, 1.0)
    prepared = fast._blocks[1.0]
    half = fast(img0, img1, 0.5)
    again = fast(img0, img1, 1.0)
    assert fast._blocks[1.0] is prepared and set(fast._blocks) == {1.0, 0.5}
    assert torch.equal(first, again)
    torch.testing.assert_close(half, net(img0, img1, 0.5), atol=TOLERANCE, rtol=0)


def test_prepare_validates_its_options() -> None:
    net = moving_net()
    with pytest.raises(ValueError, match="precision"):
        prepare_for_inference(net, "cpu", precision="fp8")
    with pytest.raises(ValueError, match="backend"):
        prepare_for_inference(net, "cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="IFNet only"):
        prepare_for_inference(torch.nn.Identity(), "cpu", backend="fused")
    assert prepare_for_inference(net, "cpu", backend="eager") is net
    # Other midpoint networks run as they are (under autocast when asked).
    other = torch.nn.Identity()
    assert prepare_for_inference(other, "cpu") is other


def uint8_pair(batch: int = 2, height: int = 72, width: int = 100) -> tuple[np.ndarray, np.ndarray]:
    img0, img1 = pair(batch=batch, height=height, width=width, seed=5)
    to_uint8 = lambda t: (t.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # noqa: E731
    return to_uint8(img0), to_uint8(img1)


def test_engine_uses_the_fused_path_with_the_same_frames() -> None:
    net = moving_net(seed=4)
    frames0, frames1 = uint8_pair()
    times = [0.25, 0.5, 0.75, 1 / 3]  # bisection and (for 1/3) retiming from the pass's flow
    eager = MidpointNetworkInterpolator(net, "cpu", backend="eager", retimes=True).interpolate(frames0, frames1, times)
    engine = MidpointNetworkInterpolator(net, "cpu", retimes=True)
    assert isinstance(engine.model, FusedIFNet)
    fused = engine.interpolate(frames0, frames1, times)
    assert fused.shape == eager.shape == (2, 4, 72, 100, 3) and fused.dtype == np.uint8
    difference = np.abs(fused.astype(int) - eager.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


@torch.inference_mode()
def test_cpu_autocast_bfloat16_stays_close() -> None:
    net = moving_net()
    img0, img1 = pair(height=64, width=96)
    reference = net(img0, img1)
    fast = prepare_for_inference(net, "cpu", precision="bf16")
    output = fast(img0, img1)
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
    assert (output - reference).abs().mean() < 2e-2


# --- CUDA: autocast, channels_last, pinned host memory ---------------------------------------------

@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16", "fp32"])
@torch.inference_mode()
def test_cuda_fused_close_to_cpu(precision: str) -> None:
    net = moving_net()
    img0, img1 = pair(batch=2, height=128, width=192)
    reference = net(img0, img1)
    gpu_net = moving_net().to("cuda")
    fast = prepare_for_inference(gpu_net, "cuda", precision=precision)
    output = fast(img0.cuda(), img1.cuda()).float().cpu()
    assert torch.isfinite(output).all()
    # fp32 may use TF32 convolutions; half precisions keep ~3 significant digits.
    assert (output - reference).abs().mean() < (2e-3 if precision == "fp32" else 2e-2)


@cuda
@pytest.mark.parametrize("backend", ["auto", "eager"])
def test_cuda_engine_matches_cpu_engine(backend: str) -> None:
    frames0, frames1 = uint8_pair(batch=3)
    times = [0.25, 0.5, 0.75]
    on_cpu = MidpointNetworkInterpolator(moving_net(), "cpu", retimes=True).interpolate(frames0, frames1, times)
    engine = MidpointNetworkInterpolator(moving_net().to("cuda"), "cuda", precision="fp16", backend=backend, retimes=True)
    on_gpu = engine.interpolate(frames0, frames1, times)
    assert on_gpu.shape == on_cpu.shape and on_gpu.dtype == np.uint8
    difference = np.abs(on_gpu.astype(int) - on_cpu.astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 16
