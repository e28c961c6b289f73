"""Combiners of interpolation candidates: K frames at time t, made by other engines, become one.

Both take `candidates` (B, K, 3, H, W), each candidate's confidence map `confidence` (B, K, H, W: how much
its engine's two source frames disagree once warped to t, 0 to 1; None for a combiner that does not
`uses_confidence`), the two source frames `img0`, `img1` (B, 3, H, W) and the time `t` (B,), all floats,
images in [0, 1], and return the frame at t (B, 3, H, W). Which engines make the candidates
is the registry's business (an entry's `network` and `flow` config name them; `vidgen.registry` loads
them): a combiner never loads or runs them.

- `AverageCombiner` (arch `mix`, no weights): the per-pixel mean of the candidates.
- `EnsembleNet` (arch `ensemble`): a small U-Net that sees the candidates, their confidence maps, the
  source frames, where the candidates disagree and t, and predicts per-pixel weights over the candidates (a softmax, at half
  resolution, upsampled) plus a residual correction at full resolution. It starts as the plain average
  (zero logits, zero residual) and learns where one candidate is right and the other wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.archs import ALL_FLOAT_DTYPES, register_arch

# Half resolution, then three more stride-2 levels: inputs are padded to multiples of 16.
SPATIAL_MULTIPLE = 16
CANDIDATE_ENTRIES = {"network": "interpolate", "flow": "interpolate"}  # config keys naming the candidates


def _check(candidates: Tensor, img0: Tensor, img1: Tensor, t: Tensor) -> None:
    if candidates.dim() != 5 or candidates.shape[2] != 3:
        raise ValueError(f"candidates must be (B, K, 3, H, W), got {tuple(candidates.shape)}")
    if img0.shape != img1.shape or img0.shape != candidates[:, 0].shape:
        raise ValueError(f"frames {tuple(img0.shape)}, {tuple(img1.shape)} do not match the candidates")
    if t.shape != (candidates.shape[0],):
        raise ValueError(f"t must be (B,) = ({candidates.shape[0]},), got {tuple(t.shape)}")


class AverageCombiner:
    """The per-pixel mean of the candidates."""

    uses_confidence = False

    def __call__(self, candidates: Tensor, confidence: Tensor | None, img0: Tensor, img1: Tensor, t: Tensor) -> Tensor:
        _check(candidates, img0, img1, t)
        return candidates.mean(1)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True))


class _ResBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(width, width, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.body(x), 0.1)


class EnsembleNet(nn.Module):
    """Per-pixel weights over K candidates plus a residual; see the module docstring.

    Inputs per pixel: the K candidates and their K confidence maps, both source frames, the mean absolute
    difference between the first two candidates, and t (4K + 8 channels). The U-Net runs at 1/2, 1/4 and
    1/8 of the frame.
    """

    uses_confidence = True

    def __init__(self, candidates: int = 2, widths: tuple[int, int, int] = (24, 32, 48), detail: int = 8) -> None:
        super().__init__()
        if candidates < 2:
            raise TypeError(f"an ensemble needs at least 2 candidates, got {candidates}")
        w1, w2, w3 = (int(w) for w in widths)
        self.candidates = int(candidates)
        channels = 4 * self.candidates + 8
        self.enc1 = _conv(channels, w1)
        self.enc2 = nn.Sequential(_conv(w1, w2, 2), _ResBlock(w2))
        self.enc3 = nn.Sequential(_conv(w2, w3, 2), _ResBlock(w3), _ResBlock(w3))
        self.dec2 = _conv(w3 + w2, w2)
        self.dec1 = _conv(w2 + w1, w1)
        self.weights = nn.Conv2d(w1, self.candidates, 3, 1, 1)
        self.detail = nn.Conv2d(w1, detail, 3, 1, 1)
        self.refine = nn.Sequential(_conv(detail + 3, detail), nn.Conv2d(detail, 3, 3, 1, 1))
        with torch.no_grad():  # start as the plain average: equal weights, no residual
            self.weights.weight.zero_()
            self.weights.bias.zero_()
            self.refine[-1].weight.zero_()
            self.refine[-1].bias.zero_()

    def forward(self, candidates: Tensor, confidence: Tensor, img0: Tensor, img1: Tensor, t: Tensor) -> Tensor:
        _check(candidates, img0, img1, t)
        if confidence is None or confidence.shape != (*candidates.shape[:2], *candidates.shape[-2:]):
            raise ValueError("confidence must be (B, K, H, W), one map per candidate")
        if candidates.shape[1] != self.candidates:
            raise ValueError(f"this ensemble combines {self.candidates} candidates, got {candidates.shape[1]}")
        b, k, _, h, w = candidates.shape
        if h % SPATIAL_MULTIPLE or w % SPATIAL_MULTIPLE:
            raise ValueError(f"frames must be multiples of {SPATIAL_MULTIPLE} px, got {h}x{w}")
        disagreement = (candidates[:, 0] - candidates[:, 1]).abs().mean(1, keepdim=True)
        time = t.view(b, 1, 1, 1).expand(b, 1, h, w).to(candidates.dtype)
        x = torch.cat((candidates.flatten(1, 2), confidence.to(candidates.dtype), img0, img1, disagreement, time), 1)
        half = F.avg_pool2d(x, 2)
        e1 = self.enc1(half)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat((F.interpolate(e3, scale_factor=2.0, mode="bilinear", align_corners=False), e2), 1))
        d1 = self.dec1(torch.cat((F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False), e1), 1))
        full = (h, w)
        weights = F.interpolate(self.weights(d1), size=full, mode="bilinear", align_corners=False).softmax(1)
        blended = (weights.unsqueeze(2) * candidates).sum(1)
        detail = F.interpolate(self.detail(d1), size=full, mode="bilinear", align_corners=False)
        return blended + self.refine(torch.cat((detail, blended), 1))

    def training_outputs(self, candidates: Tensor, confidence: Tensor, img0: Tensor, img1: Tensor,
                         t: Tensor) -> tuple[Tensor, dict]:
        return self(candidates, confidence, img0, img1, t), {}


@register_arch("mix", task="interpolate", needs_weights=False, requires=CANDIDATE_ENTRIES,
               defaults={"network": "rife", "flow": "flow"})
def build_mix(network: str = "rife", flow: str = "flow") -> AverageCombiner:
    """The per-pixel average of a network's frame and the classical flow engine's frame (no weights)."""
    return AverageCombiner()


@register_arch("ensemble", task="interpolate", requires=CANDIDATE_ENTRIES, spatial_multiple=SPATIAL_MULTIPLE,
               dtypes=ALL_FLOAT_DTYPES,
               defaults={"network": "rife", "flow": "flow", "widths": [24, 32, 48], "detail": 8})
def build_ensemble(network: str = "rife", flow: str = "flow", widths: tuple[int, int, int] = (24, 32, 48),
                   detail: int = 8) -> EnsembleNet:
    """A learned per-pixel choice between a network's frame and the flow engine's, plus a residual (~80k
    parameters at the defaults); its candidates' engines stay frozen."""
    return EnsembleNet(candidates=len(CANDIDATE_ENTRIES), widths=tuple(widths), detail=int(detail))
