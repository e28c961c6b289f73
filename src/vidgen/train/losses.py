"""Training losses for frame interpolation on (B,C,H,W) float tensors in [0, 1].

Every term maps `(pred, target)` to a scalar tensor that is exactly 0 when the two are equal, and is
differentiable in `pred`. Frame terms also accept sequences (B,T,C,H,W), which they treat as B*T frames;
`temporal` needs sequences.

- `l1`: mean absolute error.
- `charbonnier`: mean of sqrt(d^2 + eps^2) - eps (a smooth L1; the - eps makes it 0 at d = 0).
- `ssim`: 1 - SSIM with the definition of `vidgen.metrics.quality.ssim` (Gaussian 11-tap window,
  sigma 1.5, population covariances, K1 = 0.01, K2 = 0.03, the 5-pixel border dropped), data range 1.
- `census`: soft ternary census transform (7x7) of the luma, compared with a soft Hamming distance,
  as in RIFE's `Ternary` and ARFlow's `TernaryLoss` (luma on a 0-255 scale, as ARFlow does).
- `laplacian`: L1 between Laplacian pyramids (5x5 binomial kernel, up to 5 levels), as RIFE's `LapLoss`.
- `lab`: L1 in CIELAB (sRGB D65, differentiable conversion) divided by 100, so that a difference
  spanning the lightness range counts about as much as one spanning [0, 1] in RGB.
- `temporal`: L1 between the second temporal differences x[t+1] - 2 x[t] + x[t-1] of a predicted
  sequence and of the target (penalises flicker / jerky motion the target does not have).

`build_loss("charbonnier+0.1*census+0.05*lab")` combines terms into one callable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from vidgen.models.pyramid import LAPLACIAN_LEVELS, laplacian_l1

LossFn = Callable[[Tensor, Tensor], Tensor]

_CHARBONNIER_EPS = 1e-3
_SSIM_SIGMA = 1.5
_SSIM_RADIUS = 5  # int(3.5 * 1.5 + 0.5), as scipy / scikit-image / vidgen.metrics.quality
_SSIM_K1, _SSIM_K2 = 0.01, 0.03
_CENSUS_PATCH = 7
_LAB_SCALE = 1.0 / 100.0


def _check_pair(pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def _frames(x: Tensor) -> Tensor:
    """(B,C,H,W) as is; (B,T,C,H,W) as (B*T,C,H,W)."""
    if x.dim() == 5:
        return x.flatten(0, 1)
    if x.dim() != 4:
        raise ValueError(f"expected (B,C,H,W) or (B,T,C,H,W) tensors, got shape {tuple(x.shape)}")
    return x


def l1_loss(pred: Tensor, target: Tensor) -> Tensor:
    _check_pair(pred, target)
    return (pred - target).abs().mean()


def charbonnier_loss(pred: Tensor, target: Tensor, eps: float = _CHARBONNIER_EPS) -> Tensor:
    _check_pair(pred, target)
    return (torch.sqrt((pred - target) ** 2 + eps * eps) - eps).mean()


def _gaussian_taps(like: Tensor) -> Tensor:
    x = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / _SSIM_SIGMA) ** 2)
    return (taps / taps.sum()).to(device=like.device, dtype=like.dtype)


def ssim_map(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """SSIM map of (N,C,H,W) images without the 5-pixel border: (N,C,H-10,W-10).

    Valid (unpadded) separable filtering gives exactly the interior that `vidgen.metrics.quality.ssim`
    averages, since its border crop drops every pixel its padding reaches.
    """
    channels = pred.shape[1]
    size = 2 * _SSIM_RADIUS + 1
    if min(pred.shape[-2:]) < size:
        raise ValueError(f"SSIM needs frames of at least {size}x{size}, got {tuple(pred.shape[-2:])}")
    taps = _gaussian_taps(pred)
    horizontal = taps.view(1, 1, 1, size).expand(channels, 1, 1, size)
    vertical = taps.view(1, 1, size, 1).expand(channels, 1, size, 1)

    def local_mean(image: Tensor) -> Tensor:
        return F.conv2d(F.conv2d(image, horizontal, groups=channels), vertical, groups=channels)

    mean_x, mean_y = local_mean(pred), local_mean(target)
    var_x = local_mean(pred * pred) - mean_x * mean_x
    var_y = local_mean(target * target) - mean_y * mean_y
    covariance = local_mean(pred * target) - mean_x * mean_y
    c1 = (_SSIM_K1 * data_range) ** 2
    c2 = (_SSIM_K2 * data_range) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    denominator = (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - mean SSIM (per frame: averaged over channels and the cropped map; then over frames)."""
    _check_pair(pred, target)
    pred, target = _frames(pred), _frames(target)
    # Float64 statistics would be exact, but float32 is what training runs in; the variances are
    # differences of means, so keep them at least float32 under autocast.
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return 1.0 - ssim_map(pred.to(dtype), target.to(dtype)).mean()


def _luma(x: Tensor) -> Tensor:
    if x.shape[1] == 3:
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        return 0.2989 * r + 0.5870 * g + 0.1140 * b
    return x.mean(1, keepdim=True)


def census_transform(x: Tensor) -> Tensor:
    """Soft ternary census of (N,C,H,W) images: (N,49,H,W), each neighbour's signed difference squashed."""
    gray = _luma(x) * 255.0
    taps = _CENSUS_PATCH * _CENSUS_PATCH
    # One one-hot 7x7 kernel per neighbour: output channel k is the k-th neighbour of every pixel.
    kernels = torch.eye(taps, device=x.device, dtype=x.dtype).view(taps, 1, _CENSUS_PATCH, _CENSUS_PATCH)
    patches = F.conv2d(gray, kernels, padding=_CENSUS_PATCH // 2)
    difference = patches - gray
    return difference / torch.sqrt(0.81 + difference * difference)


def census_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Soft Hamming distance between census transforms, ignoring the 1-pixel border (as RIFE)."""
    _check_pair(pred, target)
    pred, target = _frames(pred), _frames(target)
    distance = (census_transform(pred) - census_transform(target)) ** 2
    hamming = (distance / (0.1 + distance)).mean(1, keepdim=True)
    height, width = hamming.shape[-2:]
    if height > 2 and width > 2:
        hamming = hamming[..., 1:-1, 1:-1]
    return hamming.mean()


def laplacian_loss(pred: Tensor, target: Tensor, levels: int = LAPLACIAN_LEVELS) -> Tensor:
    """Sum over pyramid levels of the mean L1 between the two pyramids (RIFE's LapLoss)."""
    _check_pair(pred, target)
    return laplacian_l1(_frames(pred), _frames(target), levels)


# sRGB (linear) -> XYZ, D65, and the D65 reference white.
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """(N,3,H,W) sRGB in [0,1] -> CIELAB (L in [0,100], a/b roughly [-128,127]); differentiable everywhere.

    Each piecewise branch is evaluated on inputs clamped to its own domain, so the unused branch never
    produces infinite or NaN gradients (cube root at 0, power of a negative base).
    """
    if rgb.dim() != 4 or rgb.shape[1] != 3:
        raise ValueError(f"the Lab loss needs (B,3,H,W) RGB tensors, got shape {tuple(rgb.shape)}")
    rgb = rgb.clamp(0.0, 1.0)
    linear = torch.where(
        rgb <= 0.04045, rgb / 12.92, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4
    )
    matrix = torch.tensor(_RGB_TO_XYZ, device=rgb.device, dtype=rgb.dtype)
    white = torch.tensor(_WHITE_D65, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear) / white
    delta = 6.0 / 29.0
    f = torch.where(
        xyz > delta**3, xyz.clamp(min=delta**3) ** (1.0 / 3.0), xyz / (3 * delta * delta) + 4.0 / 29.0
    )
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), 1)


def lab_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean L1 in CIELAB / 100 (computed in at least float32)."""
    _check_pair(pred, target)
    pred, target = _frames(pred), _frames(target)
    dtype = torch.promote_types(pred.dtype, torch.float32)
    return (rgb_to_lab(pred.to(dtype)) - rgb_to_lab(target.to(dtype))).abs().mean() * _LAB_SCALE


def temporal_loss(pred: Tensor, target: Tensor) -> Tensor:
    """L1 between second temporal differences of (B,T,C,H,W) sequences, T >= 3."""
    _check_pair(pred, target)
    if pred.dim() != 5 or pred.shape[1] < 3:
        raise ValueError(
            f"the temporal loss needs (B,T,C,H,W) sequences with T >= 3, got shape {tuple(pred.shape)}"
        )

    def second_difference(x: Tensor) -> Tensor:
        return x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]

    return (second_difference(pred) - second_difference(target)).abs().mean()


LOSSES: dict[str, LossFn] = {
    "l1": l1_loss,
    "charbonnier": charbonnier_loss,
    "ssim": ssim_loss,
    "census": census_loss,
    "laplacian": laplacian_loss,
    "lab": lab_loss,
    "temporal": temporal_loss,
}
# Other spellings accepted in specs.
ALIASES = {"lap": "laplacian", "ternary": "census", "temporal_smoothness": "temporal"}

_TERM = re.compile(r"^(?:(?P<weight>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\*\s*)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


@dataclass(frozen=True)
class CompositeLoss:
    """Weighted sum of named terms: `loss(pred, target) -> (total, {name: weighted term})`.

    The dict holds each term's weighted contribution (they sum to `total`), undetached.
    """

    terms: tuple[tuple[str, float], ...]

    def __call__(self, pred: Tensor, target: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        parts = {name: weight * LOSSES[name](pred, target) for name, weight in self.terms}
        total = sum(parts.values(), pred.new_zeros((), dtype=torch.promote_types(pred.dtype, torch.float32)))
        return total, parts

    @property
    def spec(self) -> str:
        return "+".join(name if weight == 1.0 else f"{weight:g}*{name}" for name, weight in self.terms)


def build_loss(spec: str) -> CompositeLoss:
    """Parse e.g. "charbonnier+0.1*census+0.05*lab" (weight defaults to 1; whitespace ignored)."""
    known = ", ".join(sorted(LOSSES))
    terms: list[tuple[str, float]] = []
    if not spec or not spec.strip():
        raise ValueError(f"empty loss spec; known terms: {known}")
    for raw in spec.split("+"):
        text = raw.strip()
        match = _TERM.match(text)
        if match is None:
            raise ValueError(f"cannot parse loss term {text!r} in {spec!r}: expected NAME or WEIGHT*NAME; known terms: {known}")
        name = match["name"].lower()
        name = ALIASES.get(name, name)
        if name not in LOSSES:
            raise ValueError(f"unknown loss term {match['name']!r} in {spec!r}; known terms: {known}")
        weight = float(match["weight"]) if match["weight"] is not None else 1.0
        if not math.isfinite(weight):
            raise ValueError(f"loss term {text!r} has a non-finite weight")
        if any(name == existing for existing, _ in terms):
            raise ValueError(f"loss term {name!r} appears twice in {spec!r}")
        terms.append((name, weight))
    return CompositeLoss(tuple(terms))
