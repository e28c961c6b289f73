"""Fast inference for IFNet: the same function as `IFNet.forward`, restructured for speed.

`prepare_for_inference(model, device, precision)` returns a callable with IFNet's signature
(`net(img0, img1, scale)`, plus `midpoint_with_flow`; other attributes pass through to the model).
The fused path computes what the eager port computes, in another order of float operations: its frames
differ from eager by float rounding only (tests/test_accel.py bounds it).

What it changes, each without changing the function (docs/design.md, "Inference fast path", has the
measurements):
- Each IFNet block runs two passes, on the frames and on the swapped frames, and averages them. The
  swapped pass's input is a signed permutation of the forward pass's channels, so both first
  convolutions read one tensor (permuted weights); the rest runs as one network of two channel
  groups (`groups=2`); a pass's flow and mask heads share one transposed conv; and the average of
  the two passes is folded into the weights of the last transposed conv.
- Activations in channels_last.
- On CPU, when this PyTorch has NNPACK, large feature maps (at least WINOGRAD_MIN_PIXELS) go through its
  Winograd 3x3 convolutions: the residual units, and the heads' first transposed conv rewritten as a 3x3
  conv over output pixel phases; the last transposed conv then becomes small matrix products added into
  place (`_overlap_add`). oneDNN otherwise, and from the first NNPACK failure on.
- On CPU, glibc's malloc is told to keep large blocks in its heap (`vidgen.allocator.keep_freed_memory`).
- Batches run one pair at a time on CPU; whole on CUDA, under autocast.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.allocator import keep_freed_memory
from vidgen.models.ifnet import IFBlock, IFNet, check_inputs

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "fused", "eager")
_AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
# Each block sees the frames downscaled by these factors (divided by the user's scale), as in IFNet.
_BLOCK_SCALES = (4.0, 2.0, 1.0)
# The swapped pass's input channel i is _SIGNS[i] * forward input channel _SOURCES[i]:
# (warped0, warped1, mask, flow0, flow1) -> (warped1, warped0, -mask, flow1, flow0).
_SOURCES = (3, 4, 5, 0, 1, 2, 6, 9, 10, 7, 8)
_SIGNS = (1, 1, 1, 1, 1, 1, -1, 1, 1, 1, 1)
# Feature maps from this size up go through NNPACK's Winograd convolution (where it beats oneDNN's).
WINOGRAD_MIN_PIXELS = 20_000
_CL = torch.channels_last


def resolve_precision(precision: str, device: torch.device, cpu_bf16: bool = False) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`, or None for float32. `auto`: fp16 on CUDA, bf16 on a
    CPU when `cpu_bf16` says it computes bf16 natively (`vidgen.runtime.devices.cpu_has_native_bf16`, which
    callers above this layer resolve `auto` with), fp32 otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_bf16 and device.type == "cpu" else None
    return _AUTOCAST_DTYPES.get(precision)


def prepare_for_inference(model: Any, device: Any, precision: str = "auto", backend: str = "auto") -> Any:
    """A callable computing `model(img0, img1, scale)` faster on `device`.

    `backend`: `fused` (IFNet only; the default for IFNet) or `eager` (the model itself, under
    autocast when `precision` asks for it). Other models always get `eager`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    device = torch.device(device)
    dtype = resolve_precision(precision, device)
    if isinstance(model, IFNet) and backend in ("auto", "fused"):
        if device.type == "cpu":
            keep_freed_memory(256 << 20, 1 << 30)  # a few GB of tensors above 32 MB per 720p pair
        return FusedIFNet(model, device, dtype)
    if backend == "fused":
        raise ValueError(f"backend 'fused' supports IFNet only, not {type(model).__name__}")
    return model if dtype is None else _Autocast(model, device, dtype)


class _Autocast:
    """A model called under autocast; every other attribute is the model's."""

    def __init__(self, model: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.model, self.device, self.dtype = model, device, dtype

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with torch.autocast(self.device.type, dtype=self.dtype):
            return self.model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "model" or name.startswith("__"):
            raise AttributeError(name)
        attribute = getattr(self.model, name)
        if not callable(attribute):
            return attribute

        def under_autocast(*args: Any, **kwargs: Any) -> Any:
            with torch.autocast(self.device.type, dtype=self.dtype):
                return attribute(*args, **kwargs)

        return under_autocast


def winograd_available() -> bool:
    """Whether this PyTorch has NNPACK (its availability check also initialises it)."""
    return hasattr(torch, "_nnpack_spatial_convolution") and torch.backends.nnpack.is_available()


def _resize(x: Tensor, factor: float) -> Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False, recompute_scale_factor=False)


def _prelu(x: Tensor, weight: Tensor) -> Tensor:
    return F.prelu(x, weight if weight.dtype == x.dtype else weight.to(x.dtype))


def _pair(first: Tensor, second: Tensor | None = None) -> Tensor:
    """Weights of the forward and swapped passes stacked along dim 0 (the group dimension)."""
    return torch.cat((first, first if second is None else second), 0).detach()


class _FusedBlock:
    """One IFBlock's two passes (frames, swapped frames) as one network of two channel groups.

    `forward(x)` takes the block's input at the block's resolution, (warped0, warped1, mask, flow)
    with flow in full-size pixels, and returns the averaged (flow, mask) update (5 channels) at that
    resolution, flow already in full-size pixels.
    """

    def __init__(self, block: IFBlock, block_scale: float, device: torch.device) -> None:
        self.channels = channels = block.conv0[1][0].out_channels
        half = channels // 2  # each head's hidden width
        first = block.conv0[0][0].weight.detach().clone()
        first[:, 7:11] *= 1.0 / block_scale  # flow is measured in pixels of the downscaled input
        swapped = torch.empty_like(first)
        for target, (source, sign) in enumerate(zip(_SOURCES, _SIGNS)):
            swapped[:, source] = sign * first[:, target]
        self.first = (_pair(first, swapped), _pair(block.conv0[0][0].bias), _pair(block.conv0[0][1].weight))
        # Block 0 sees zero mask and flow: their weights would only add zeros.
        self.first_images_only = (self.first[0][:, :6].contiguous(), *self.first[1:])
        conv, prelu = block.conv0[1]
        self.down = (_pair(conv.weight), _pair(conv.bias), _pair(prelu.weight))
        self.residual = [
            tuple((_pair(layer[0].weight), _pair(layer[0].bias), _pair(layer[1].weight)) for layer in unit)
            for unit in (block.convblock0, block.convblock1, block.convblock2, block.convblock3)
        ]
        flow_head, mask_head = block.conv1, block.conv2
        self.head = (
            _pair(torch.cat((flow_head[0].weight, mask_head[0].weight), 1)),
            _pair(torch.cat((flow_head[0].bias, mask_head[0].bias))),
            _pair(torch.cat((flow_head[1].weight, mask_head[1].weight))),
        )
        # Last transposed conv: (forward flow + swapped-back backward flow) / 2 and (forward mask -
        # backward mask) / 2, times block_scale to bring flow back to full-size pixels.
        flow_weight, flow_bias = flow_head[2].weight.detach(), flow_head[2].bias.detach()
        mask_weight, mask_bias = mask_head[2].weight.detach(), mask_head[2].bias.detach()
        flow_factor = block_scale / 2
        out = flow_weight.new_zeros(4 * half, 5, *flow_weight.shape[2:])
        out[0:half, 0:4] = flow_weight * flow_factor
        out[2 * half:3 * half, 0:2] = flow_weight[:, 2:4] * flow_factor
        out[2 * half:3 * half, 2:4] = flow_weight[:, 0:2] * flow_factor
        out[half:2 * half, 4:5] = mask_weight / 2
        out[3 * half:4 * half, 4:5] = -mask_weight / 2
        swapped_bias = torch.cat((flow_bias[2:4], flow_bias[0:2]))
        out_bias = torch.cat(((flow_bias + swapped_bias) * flow_factor, (mask_bias - mask_bias) / 2))
        self.out = (out, out_bias)
        self._prepare_winograd(block, out)
        self._to_layout(device)

    def _prepare_winograd(self, block: IFBlock, out: Tensor) -> None:
        """Weights of the Winograd path: per pass (both passes share them), NCHW as NNPACK wants.

        The heads' first transposed conv becomes a 3x3 conv with 4 outputs per channel, one per
        pixel phase of its 2x upsampled output; the last transposed conv becomes matrices mapping
        a pixel's channels to its 4x4 taps (flow: 4 x 16 rows from the flow head, mask: 16 rows
        from the mask head), added into the output by `_overlap_add`. NNPACK runs the 3x3 conv
        faster than oneDNN runs the transposed one, and the pixel shuffle is never materialised.
        """
        units = (block.convblock0, block.convblock1, block.convblock2, block.convblock3)
        self.residual_single = [
            tuple((layer[0].weight.detach(), layer[0].bias.detach(), layer[1].weight.detach()) for layer in unit)
            for unit in units
        ]
        flow_head, mask_head = block.conv1, block.conv2
        self.head_subpixel = (
            _subpixel_weight(torch.cat((flow_head[0].weight, mask_head[0].weight), 1).detach()),
            torch.cat((flow_head[0].bias, mask_head[0].bias)).detach().repeat_interleave(4),
            torch.cat((flow_head[1].weight, mask_head[1].weight)).detach().repeat_interleave(4),
        )
        half = self.channels // 2
        self.out_taps = [  # rows of `out`: per pass, flow head then mask head
            (out[2 * g * half:(2 * g + 1) * half, 0:4].reshape(half, 64).t(),
             out[(2 * g + 1) * half:(2 * g + 2) * half, 4:5].reshape(half, 16).t())
            for g in range(2)
        ]

    def _to_layout(self, device: torch.device) -> None:
        def place(t: Tensor) -> Tensor:
            t = t.to(device)
            return t.contiguous(memory_format=_CL) if t.dim() == 4 else t.contiguous()

        self.first = tuple(place(t) for t in self.first)
        self.first_images_only = tuple(place(t) for t in self.first_images_only)
        self.down = tuple(place(t) for t in self.down)
        self.residual = [tuple(tuple(place(t) for t in layer) for layer in unit) for unit in self.residual]
        self.residual_single = [
            tuple(tuple(t.to(device).contiguous() for t in layer) for layer in unit) for unit in self.residual_single
        ]
        self.head_subpixel = tuple(t.to(device).contiguous() for t in self.head_subpixel)
        self.out_taps = [tuple(t.to(device).contiguous() for t in pair) for pair in self.out_taps]
        self.head = tuple(place(t) for t in self.head)
        self.out = tuple(place(t) for t in self.out)

    def forward(self, x: Tensor, winograd: bool) -> Tensor:
        weight, bias, slope = self.first if x.shape[1] == 11 else self.first_images_only
        features = _prelu(F.conv2d(x, weight, bias, 2, 1), slope)
        weight, bias, slope = self.down
        features = _prelu(F.conv2d(features, weight, bias, 2, 1, groups=2), slope)
        pixels = features.shape[-2] * features.shape[-1]
        if winograd and features.dtype == torch.float32 and pixels >= WINOGRAD_MIN_PIXELS:
            return torch.cat([self._rest_winograd(features[i:i + 1]) for i in range(features.shape[0])], 0)
        for (w1, b1, a1), (w2, b2, a2) in self.residual:
            hidden = _prelu(F.conv2d(features, w1, b1, 1, 1, groups=2), a1)
            features = _prelu(F.conv2d(hidden, w2, b2, 1, 1, groups=2), a2) + features
        weight, bias, slope = self.head
        hidden = _prelu(F.conv_transpose2d(features, weight, bias, 2, 1, groups=2), slope)
        weight, bias = self.out
        return F.conv_transpose2d(hidden, weight, bias, 2, 1)

    def _rest_winograd(self, features: Tensor) -> Tensor:
        """Residual units and heads of one pair on NNPACK; each pass is a contiguous NCHW slice."""
        features = features.contiguous()
        channels, half = self.channels, self.channels // 2
        streams = [features[:, :channels], features[:, channels:]]
        for (w1, b1, a1), (w2, b2, a2) in self.residual_single:
            streams = [_prelu(_winograd_conv(_prelu(_winograd_conv(s, w1, b1), a1), w2, b2), a2) + s for s in streams]
        kernel, bias, slope = self.head_subpixel
        height, width = features.shape[-2:]
        pixels = height * width
        taps = features.new_empty(4, 80, pixels)  # per phase: 5 output channels x 4x4 taps
        for index, stream in enumerate(streams):
            hidden = _prelu(_winograd_conv(stream, kernel, bias), slope).view(2 * half, 4, pixels)
            flow_taps, mask_taps = self.out_taps[index]
            for phase in range(4):
                if index == 0:
                    torch.mm(flow_taps, hidden[:half, phase], out=taps[phase, :64])
                    torch.mm(mask_taps, hidden[half:, phase], out=taps[phase, 64:])
                else:
                    taps[phase, :64].addmm_(flow_taps, hidden[:half, phase])
                    taps[phase, 64:].addmm_(mask_taps, hidden[half:, phase])
        return _overlap_add(taps.view(2, 2, 5, 4, 4, height, width), self.out[1])


def _subpixel_weight(weight: Tensor) -> Tensor:
    """A stride-2, padding-1, 4x4 transposed conv (in, out, 4, 4) as a 3x3 conv (out * 4, in, 3, 3).

    Output channel o * 4 + r * 2 + s holds the transposed conv's output pixels (2i + r, 2j + s).
    Along each axis, phase 0 takes kernel taps 3 and 1 from input offsets -1 and 0, phase 1 taps 2
    and 0 from offsets 0 and +1; the ninth tap of each 3x3 is zero.
    """
    in_channels, out_channels = weight.shape[:2]
    kernel = weight.new_zeros(out_channels, 2, 2, in_channels, 3, 3)
    taps = ({-1: 3, 0: 1}, {0: 2, 1: 0})
    for r in range(2):
        for s in range(2):
            for dy, ky in taps[r].items():
                for dx, kx in taps[s].items():
                    kernel[:, r, s, :, dy + 1, dx + 1] = weight[:, :, ky, kx].t()
    return kernel.reshape(out_channels * 4, in_channels, 3, 3)


def _overlap_add(taps: Tensor, bias: Tensor) -> Tensor:
    """The last stride-2, 4x4 transposed conv of a head, from per-pixel tap contributions.

    `taps[r, s, c, ky, kx, i, j]` is what the head's pixel (2i + r, 2j + s) adds through kernel tap
    (ky, kx) to output channel c at pixel (2(2i + r) - 1 + ky, 2(2j + s) - 1 + kx), that is row
    4i + dy with dy = 2r - 1 + ky in -1..4: row phase dy mod 4 of cell i + dy // 4.
    """
    _, _, channels, _, _, height, width = taps.shape
    out = taps.new_zeros(channels, height + 2, 4, width + 2, 4)  # one spare cell on each side
    for r in range(2):
        for s in range(2):
            for ky in range(4):
                dy = 2 * r - 1 + ky
                rows = slice(1 + dy // 4, 1 + dy // 4 + height)
                for kx in range(4):
                    dx = 2 * s - 1 + kx
                    out[:, rows, dy % 4, 1 + dx // 4:1 + dx // 4 + width, dx % 4] += taps[r, s, :, ky, kx]
    out = out[:, 1:1 + height, :, 1:1 + width, :].reshape(1, channels, 4 * height, 4 * width)
    return out + bias.view(1, -1, 1, 1)


def _winograd_conv(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    return torch._nnpack_spatial_convolution(x, weight, bias, [1, 1])


class FusedIFNet:
    """IFNet's forward pass, restructured (see the module docstring); attributes fall through to the model."""

    def __init__(self, model: IFNet, device: torch.device, autocast_dtype: torch.dtype | None = None) -> None:
        self.model = model
        self.device = device
        self.autocast_dtype = autocast_dtype
        self._blocks: dict[float, tuple[_FusedBlock, ...]] = {}  # per user scale, built on first use
        self._lock = threading.Lock()
        self.winograd = device.type == "cpu" and winograd_available()

    def __getattr__(self, name: str) -> Any:
        if name == "model" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def __call__(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> Tensor:
        return self.midpoint_with_flow(img0, img1, scale)[0]

    def midpoint_with_flow(self, img0: Tensor, img1: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """(midpoint frame, flow to img0 and img1, mask logit), as `IFNet.midpoint_with_flow`."""
        check_inputs(img0, img1, scale)
        batch = img0.shape[0]
        blocks = self._blocks_for(scale)
        # On CPU one pair at a time: the working set of one 720p pair already exceeds the caches.
        step = 1 if self.device.type == "cpu" else batch
        results = []
        with self._autocast():
            for start in range(0, batch, step):
                results.append(self._forward(blocks, img0[start:start + step], img1[start:start + step], scale))
        if len(results) == 1:
            return results[0]
        return tuple(torch.cat(parts, 0) for parts in zip(*results))  # type: ignore[return-value]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _blocks_for(self, scale: float) -> tuple[_FusedBlock, ...]:
        with self._lock:
            blocks = self._blocks.get(scale)
            if blocks is None:
                model = self.model
                with torch.no_grad():
                    blocks = tuple(
                        _FusedBlock(block, block_scale / scale, self.device)
                        for block, block_scale in zip((model.block0, model.block1, model.block2), _BLOCK_SCALES)
                    )
                self._blocks[scale] = blocks
            return blocks

    def _forward(self, blocks: tuple[_FusedBlock, ...], img0: Tensor, img1: Tensor, scale: float) -> tuple[Tensor, Tensor, Tensor]:
        batch = img0.shape[0]
        images = torch.cat((img0, img1), 0)  # both warps in one grid_sample call
        flow = mask = warped = None
        for block, block_scale in zip(blocks, _BLOCK_SCALES):
            factor = block_scale / scale
            if flow is None:
                x = torch.cat((img0, img1), 1)
            else:
                x = torch.cat((warped[:batch], warped[batch:], mask, flow), 1)
            if factor != 1:
                x = _resize(x, 1.0 / factor)
            delta = self._run_block(block, x.contiguous(memory_format=_CL))
            if factor != 1:
                delta = _resize(delta, factor)
            delta = delta.float().contiguous()
            flow = delta[:, 0:4] if flow is None else flow + delta[:, 0:4]
            mask = delta[:, 4:5] if mask is None else mask + delta[:, 4:5]
            warped = self.model.warp(images, torch.cat((flow[:, 0:2], flow[:, 2:4]), 0))
        weight0 = torch.sigmoid(mask)
        return warped[:batch] * weight0 + warped[batch:] * (1 - weight0), flow, mask

    def _run_block(self, block: _FusedBlock, x: Tensor) -> Tensor:
        if not self.winograd:
            return block.forward(x, winograd=False)
        try:
            return block.forward(x, winograd=True)
        except RuntimeError:  # NNPACK refuses some inputs; oneDNN takes everything
            self.winograd = False
            return block.forward(x, winograd=False)
