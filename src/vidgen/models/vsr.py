"""VSR: vidgen's recurrent video super-resolution network, in the spirit of BasicVSR (Chan et al., CVPR 2021).

Every frame's features are propagated along time in both directions. Going backwards (last frame to
first), the state from frame t+1 is warped onto frame t by optical flow, concatenated with frame t and
updated by a residual trunk (a conv, then `blocks` residual blocks of two 3x3 convs, `channels` wide);
going forwards the same with the state from frame t-1. At each frame the two states are fused (1x1 conv),
upsampled by pixel shuffle (x2 steps, or one x3), refined by two convs and added to a bicubic upsample of
the frame, so the network learns the detail bicubic misses, from the neighbours that hold it.

Flow is not learned: it is OpenCV's DIS optical flow (Kroeger et al. 2016, the estimator of vidgen's
`classical-flow` model) between neighbouring low-resolution frames, computed without gradients. It is
deterministic, needs no training, and works at once on footage of any kind; the network learns only to
fuse and upsample. (BasicVSR uses a pretrained SPyNet, which is not available here.)

Frames are processed in windows: `upscale_frames(lr (B,T,3,h,w), keep)` propagates over all T frames and
reconstructs only the frames in `keep`, so a long video goes through in chunks of `chunk_frames` with
`temporal_context` frames of context each side (declared capabilities; `vidgen.tasks.upscale.stream`).

Interface: `forward(lr (B,T,3,h,w) in [0,1]) -> (B,T,3,h*scale,w*scale)`, unclamped;
`training_outputs(lr) -> (hr, {})`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch

_MIN_FLOW_SIZE = 32  # OpenCV's DIS needs frames at least this large; smaller ones are padded


class ResidualBlock(nn.Module):
    """x + conv(relu(conv(x))), no normalisation (as EDSR / BasicVSR)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        nn.init.zeros_(self.conv2.bias)
        with torch.no_grad():
            self.conv2.weight.mul_(0.1)  # start near identity, so a deep trunk trains from the first step

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class Trunk(nn.Module):
    """A conv from `inputs` to `channels` channels, a leaky ReLU, then `blocks` residual blocks."""

    def __init__(self, inputs: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, channels, 3, 1, 1)
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(F.leaky_relu(self.conv(x), 0.1))


def flow_warp(features: Tensor, flow: Tensor) -> Tensor:
    """Sample (B,C,h,w) `features` at x + flow(x) (flow (B,2,h,w) in pixels, x then y); zeros outside."""
    _, _, height, width = features.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=flow.device, dtype=flow.dtype),
                            torch.arange(width, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], -1).to(features.dtype)
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


class DisFlow:
    """DIS optical flow between low-resolution frames (uint8 luma), on the CPU; one instance per thread."""

    def __init__(self) -> None:
        self.dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def __call__(self, frame0: np.ndarray, frame1: np.ndarray) -> np.ndarray:
        """(h,w,2) float32: frame0(x) ~ frame1(x + flow(x))."""
        height, width = frame0.shape
        pad_h, pad_w = max(0, _MIN_FLOW_SIZE - height), max(0, _MIN_FLOW_SIZE - width)
        if pad_h or pad_w:
            frame0 = cv2.copyMakeBorder(frame0, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
            frame1 = cv2.copyMakeBorder(frame1, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        return self.dis.calc(frame0, frame1, None)[:height, :width]


def neighbour_flows(lr: Tensor, flow: DisFlow) -> tuple[Tensor, Tensor]:
    """(to_next, to_previous), each (B,T-1,2,h,w) on lr's device: to_next[:, t] takes frame t+1 onto frame t,
    to_previous[:, t] takes frame t onto frame t+1."""
    luma = (0.299 * lr[:, :, 0] + 0.587 * lr[:, :, 1] + 0.114 * lr[:, :, 2]).detach().float()
    grey = (luma.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    batch, frames = grey.shape[:2]
    to_next = np.stack([np.stack([flow(grey[b, t], grey[b, t + 1]) for t in range(frames - 1)]) for b in range(batch)])
    to_previous = np.stack([np.stack([flow(grey[b, t + 1], grey[b, t]) for t in range(frames - 1)])
                            for b in range(batch)])
    return (torch.from_numpy(to_next).permute(0, 1, 4, 2, 3).to(lr.device, torch.float32),
            torch.from_numpy(to_previous).permute(0, 1, 4, 2, 3).to(lr.device, torch.float32))


class VideoSR(nn.Module):
    """See the module docstring."""

    def __init__(self, scale: int = 4, channels: int = 32, blocks: int = 5, chunk_frames: int = 12,
                 temporal_context: int = 4) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"vsr scale must be 2, 3 or 4, not {scale}")
        if chunk_frames < 1 or temporal_context < 1:
            raise ValueError("chunk_frames and temporal_context must be at least 1")
        self.scale = scale
        self.chunk_frames, self.temporal_context = chunk_frames, temporal_context
        self.backward_trunk = Trunk(3 + channels, channels, blocks)
        self.forward_trunk = Trunk(3 + channels, channels, blocks)
        self.fusion = nn.Conv2d(2 * channels, channels, 1)
        steps = [3] if scale == 3 else [2] * (scale // 2)
        self.upsample = nn.ModuleList(nn.Conv2d(channels, channels * step * step, 3, 1, 1) for step in steps)
        self.steps = steps
        self.conv_hr = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv_last = nn.Conv2d(channels, 3, 3, 1, 1)
        nn.init.zeros_(self.conv_last.weight)  # an untrained network is bicubic upsampling exactly
        nn.init.zeros_(self.conv_last.bias)
        self.channels = channels
        self._flow: DisFlow | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=self.scale, chunk_frames=self.chunk_frames,
                            temporal_context=self.temporal_context)

    def _reconstruct(self, backward: Tensor, forward: Tensor, frame: Tensor) -> Tensor:
        x = F.leaky_relu(self.fusion(torch.cat([backward, forward], 1)), 0.1)
        for conv, step in zip(self.upsample, self.steps):
            x = F.leaky_relu(F.pixel_shuffle(conv(x), step), 0.1)
        x = self.conv_last(F.leaky_relu(self.conv_hr(x), 0.1))
        base = F.interpolate(frame, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return x + base

    def upscale_frames(self, lr: Tensor, keep: slice | None = None) -> Tensor:
        """(B,T,3,h,w) -> the frames `keep` of the output, (B,K,3,h*s,w*s); propagation runs over all T."""
        batch, frames, _, height, width = lr.shape
        keep = slice(*(keep or slice(0, frames)).indices(frames))
        if self._flow is None:
            self._flow = DisFlow()
        if frames > 1:
            to_next, to_previous = neighbour_flows(lr, self._flow)
        state = lr.new_zeros(batch, self.channels, height, width)
        backward: list[Tensor] = [state] * frames
        for t in range(frames - 1, keep.start - 1, -1):  # frames before `keep` need no backward state
            if t < frames - 1:
                state = flow_warp(state, to_next[:, t])
            state = self.backward_trunk(torch.cat([lr[:, t], state], 1))
            backward[t] = state
        outputs = []
        state = lr.new_zeros(batch, self.channels, height, width)
        for t in range(keep.stop):  # frames after `keep` need no forward state
            if t > 0:
                state = flow_warp(state, to_previous[:, t - 1])
            state = self.forward_trunk(torch.cat([lr[:, t], state], 1))
            if t >= keep.start:
                outputs.append(self._reconstruct(backward[t], state, lr[:, t]))
        return torch.stack(outputs, 1)

    def forward(self, lr: Tensor) -> Tensor:
        return self.upscale_frames(lr)

    def training_outputs(self, lr: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.upscale_frames(lr), {}


@register_arch("vsr", task="upscale", dtypes=ALL_FLOAT_DTYPES, tiling=True, scale=4, chunk_frames=12,
               temporal_context=4,
               defaults={"scale": 4, "channels": 32, "blocks": 5, "chunk_frames": 12, "temporal_context": 4})
def build_vsr(scale: int = 4, channels: int = 32, blocks: int = 5, chunk_frames: int = 12,
              temporal_context: int = 4) -> VideoSR:
    """Recurrent video SR: features propagated both ways along time, aligned by DIS flow (0.3M parameters)."""
    return VideoSR(scale, channels, blocks, chunk_frames, temporal_context)
