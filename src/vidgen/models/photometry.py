"""Exposure and colour between views of one scene: fitting one video's photometry to another's, and choosing
which view's photometry a fused video takes.

`photometric_fit` finds, per frame and channel, the quadratic that maps one video's values to another's (a
robust fit on block means, so occluders and local damage count little); `apply_photometric` applies it;
`photometric_align` brings views to a reference with both. `PhotometryChoice` is the last step of the
fusion model: when most views are exposure-shifted, the per-pixel median (and so anything aligned to it) is
a mixture of wrong exposures, and the right one is that of one view. It re-expresses the fused video in each
view's photometry and blends those with the video as it is, by weights from a small permutation-invariant
network over per-view statistics (the fitted quadratics, how far each view's photometry is from the other
views', value quantiles), one choice per call, so that the whole chunk (and, on tiles, the whole frame) takes
the same photometry. It is trained with a cross-entropy against the candidate closest to the clean clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _block_means(videos: Tensor, step: int) -> Tensor:
    """(..., C, H, W) -> (..., C, P) float64 means of `step` x `step` blocks."""
    *lead, c, h, w = videos.shape
    return F.avg_pool2d(videos.detach().float().reshape(-1, c, h, w), step).double().view(*lead, c, -1)


def _fit_blocks(pooled: Tensor, goal: Tensor, iterations: int, scale: float) -> Tensor:
    """(..., P) block means -> (..., 3) coefficients of the robust quadratic fit of `pooled` to `goal`."""
    basis = torch.stack([pooled * pooled, pooled, torch.ones_like(pooled)], -1)  # (..., P, 3)
    weights = torch.ones_like(pooled)
    # A small pull towards the identity map, which is what a degenerate fit gets.
    ridge = 1e-3 * torch.eye(3, dtype=torch.float64, device=pooled.device)
    identity = ridge @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64, device=pooled.device).unsqueeze(-1)
    for _ in range(iterations):
        weighted = basis * (weights / weights.sum(-1, keepdim=True)).unsqueeze(-1)
        normal = weighted.transpose(-1, -2) @ basis + ridge
        coeffs = torch.linalg.solve(normal, weighted.transpose(-1, -2) @ goal.unsqueeze(-1) + identity)
        residual = (basis @ coeffs).squeeze(-1) - goal
        weights = 1 / (1 + (residual / scale) ** 2)
    return coeffs.squeeze(-1).float()


def block_step(height: int, width: int) -> int:
    """The block side of the fits: about 32 blocks along the shorter side."""
    return max(1, min(height, width) // 32)


FIT_ITERATIONS = 3  # reweightings of the robust fit
FIT_SCALE = 0.03  # of its Cauchy weights, in values of [0, 1]


def photometric_fit(source: Tensor, target: Tensor, iterations: int = FIT_ITERATIONS,
                    scale: float = FIT_SCALE) -> Tensor:
    """(B, N, T, C, 3) coefficients (a, b, c) of the quadratic a x^2 + b x + c that best maps each of the (B, N, T, C,
    H, W) `source` videos to `target`, per frame and channel.

    Either side may instead be one (B, T, C, H, W) video for all N of the other; it is pooled once, never copied
    N times at full resolution. The fit runs on block means (about 32 blocks along the shorter side; each source's
    blocks against the target's) by iteratively reweighted least squares (Cauchy weights with `scale`), so
    occluded or otherwise disagreeing parts count little. Per frame, so a video fused in chunks is fitted the
    same way. No gradient flows through the coefficients. float64: the
    normal equations of a flat channel (an all-white clipped frame, a uniform occluder) are singular to float32's
    precision.
    """
    source, target = (x.unsqueeze(1) if x.dim() == 5 else x for x in (source, target))
    step = block_step(*source.shape[-2:])
    with torch.no_grad(), torch.autocast(source.device.type, enabled=False):
        pooled, goal = torch.broadcast_tensors(_block_means(source, step), _block_means(target, step))
        return _fit_blocks(pooled, goal, iterations, scale)


def apply_photometric(x: Tensor, coeffs: Tensor) -> Tensor:
    """(B, N, T, C, H, W) videos through their (B, N, T, C, 3) quadratics of `photometric_fit`, clamped to [0, 1]."""
    a, b1, c0 = coeffs.to(x.dtype)[..., None, None, :].unbind(-1)
    return (a * x * x + b1 * x + c0).clamp(0, 1)


def photometric_align(views: Tensor, reference: Tensor, iterations: int = FIT_ITERATIONS,
                      scale: float = FIT_SCALE) -> Tensor:
    """(B, N, T, 3, H, W) views, each mapped per frame and channel by the quadratic that best fits it to the
    (B, T, 3, H, W) `reference` (`photometric_fit`): undoes global gain, white balance and gamma differences."""
    with torch.autocast(views.device.type, enabled=False):
        coeffs = photometric_fit(views, reference, iterations, scale)
        return apply_photometric(views.float(), coeffs).to(views.dtype)


LOSS_WEIGHT = 0.01  # of the choice's cross-entropy, beside a pixel loss of ~0.03
TARGET_DB = 0.5  # the temperature of the targets, in dB of PSNR
CURVE_AT = (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)  # where a fitted quadratic is described by f(x) - x
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def value_statistics(videos: Tensor, samples: int = 64) -> Tensor:
    """(..., T, 3, H, W) -> (..., T, 3 * (len(QUANTILES) + 2)): per channel the value quantiles and the fractions
    of values at most 1/255 and at least 254/255 (crushed blacks, clipped highlights), on a grid of about
    `samples` pixels along the shorter side."""
    *lead, c, h, w = videos.shape
    step = max(1, min(h, w) // samples)
    values = videos.detach()[..., ::step, ::step].float().flatten(-2)  # (..., 3, P)
    levels = torch.tensor(QUANTILES, device=values.device)
    quantiles = torch.quantile(values, levels, dim=-1).movedim(0, -1)  # (..., 3, Q)
    low = (values <= 1 / 255).float().mean(-1, keepdim=True)
    high = (values >= 254 / 255).float().mean(-1, keepdim=True)
    return torch.cat([quantiles, low, high], -1).flatten(-2)


def curve_offsets(coeffs: Tensor) -> Tensor:
    """(..., C, 3) quadratics -> (..., C * len(CURVE_AT)): f(x) - x at `CURVE_AT` (0: the identity map)."""
    x = torch.tensor(CURVE_AT, device=coeffs.device, dtype=coeffs.dtype)
    a, b, c = (part.unsqueeze(-1) for part in coeffs.unbind(-1))
    return (a * x * x + b * x + c - x).flatten(-2)


def pairwise_agreement(views: Tensor) -> Tensor:
    """(B, N, T, 3, H, W) -> (B, N, T, 2 * 3 * len(CURVE_AT) + 1): how far each view's photometry is from the
    others': |f(x) - x| of the fits from the view to every other view, their mean and minimum over the others, and
    the smallest mean distance. Views whose exposure is untouched agree with each other (identity fits); shifted
    ones agree with nothing."""
    b, n, t, c, h, w = views.shape
    if n == 1:  # no other view to agree with
        return torch.zeros(b, n, t, 2 * c * len(CURVE_AT) + 1, device=views.device)
    with torch.no_grad(), torch.autocast(views.device.type, enabled=False):
        pooled = _block_means(views, block_step(h, w))  # (B, N, T, C, P)
        source = pooled.unsqueeze(2).expand(b, n, n, *pooled.shape[2:])
        target = pooled.unsqueeze(1).expand(b, n, n, *pooled.shape[2:])
        distance = curve_offsets(_fit_blocks(source, target, FIT_ITERATIONS, FIT_SCALE)).abs()  # (B, N, N, T, F): view -> other
        self_pair = torch.eye(n, dtype=torch.bool, device=views.device).view(1, n, n, 1, 1)
        mean = distance.masked_fill(self_pair, 0).sum(2) / (n - 1)
        nearest = distance.masked_fill(self_pair, float("inf")).amin(2)
        closest = distance.mean(-1, keepdim=True).masked_fill(self_pair, float("inf")).amin(2)
        return torch.cat([mean, nearest, closest], -1)


class PhotometryChoice(nn.Module):
    """fused (B, T, 3, H, W) and views (B, N, T, 3, H, W) -> fused in the photometry chosen (B, T, 3, H, W).

    The output is w_0 * fused + sum_k w_k * fit_k(fused), where fit_k is the quadratic that maps the fused video
    to view k (`photometric_fit`, per frame and channel) and the weights come from one softmax per call over
    "keep" and the N views. Each view is described by its fitted quadratic (as `curve_offsets`), its agreement with
    the other views (`pairwise_agreement`) and the value statistics of the view and of the fused video, averaged
    over the frames; a shared MLP embeds each view, the mean of the embeddings is the context, and the scores are
    read from each embedding with the context (so the order of the views does not matter). It starts near "keep"
    (weight 0.87 among 3 views): close to the fused video, and not so saturated that learning to leave "keep" is
    slow (from 0.99, a head trained through the blend alone went to 1.0 everywhere within 200 steps).
    """

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        stats = 3 * (len(QUANTILES) + 2)
        curve = 3 * len(CURVE_AT)
        self.embed = nn.Sequential(nn.Linear(3 * curve + 1 + 2 * stats, hidden), nn.GELU(),
                                   nn.Linear(hidden, hidden), nn.GELU())
        self.view_score = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.keep_score = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        with torch.no_grad():
            for last in (self.view_score[-1], self.keep_score[-1]):
                last.weight.zero_()
                last.bias.zero_()
            self.keep_score[-1].bias.fill_(3.0)

    def scores(self, fused: Tensor, views: Tensor, coeffs: Tensor) -> Tensor:
        """(B, 1 + N) logits: keep, then each view's photometry."""
        b, n = views.shape[:2]
        own = value_statistics(fused).unsqueeze(1).expand(b, n, *fused.shape[1:2], -1)
        features = torch.cat([curve_offsets(coeffs), pairwise_agreement(views), value_statistics(views), own],
                             -1).mean(2)  # (B, N, F)
        embedded = self.embed(features)
        context = embedded.mean(1)
        scores = self.view_score(torch.cat([embedded, context.unsqueeze(1).expand_as(embedded)], -1)).squeeze(-1)
        return torch.cat([self.keep_score(context), scores], 1).float()

    def forward(self, fused: Tensor, views: Tensor) -> Tensor:
        coeffs = photometric_fit(fused, views)  # the fused video -> each view
        weights = self.scores(fused, views, coeffs).softmax(1).to(fused.dtype)
        # One candidate at a time, so a whole 4K chunk costs a few copies of the fused video, not N + 1.
        output = weights[:, 0].view(-1, 1, 1, 1, 1) * fused
        for k in range(views.shape[1]):
            moved = apply_photometric(fused.unsqueeze(1), coeffs[:, k:k + 1])[:, 0]
            output = output + weights[:, k + 1].view(-1, 1, 1, 1, 1) * moved
        return output

    def training_outputs(self, fused: Tensor, views: Tensor, clean: Tensor) -> tuple[Tensor, Tensor]:
        """The output and a cross-entropy loss (times `LOSS_WEIGHT`) of the scores against targets from the clean
        clip: a softmax of the candidates' PSNRs over `TARGET_DB` dB, so the best candidate is the target and near
        ties share it. Through the blend alone the choice gets almost no gradient once "keep" dominates (a first
        head trained that way settled on "keep" everywhere, even where two of three views were shifted)."""
        coeffs = photometric_fit(fused, views)  # the fused video -> each view
        scores = self.scores(fused, views, coeffs)
        candidates = torch.cat([fused.unsqueeze(1), apply_photometric(fused.unsqueeze(1).expand_as(views), coeffs)], 1)
        output = (scores.softmax(1).to(fused.dtype)[..., None, None, None, None] * candidates).sum(1)
        with torch.no_grad():
            error = (candidates.float() - clean.float().unsqueeze(1)).pow(2).mean((2, 3, 4, 5))
            target = (-10 * torch.log10(error + 1e-10) / TARGET_DB).softmax(1)
        loss = -(target * scores.log_softmax(1)).sum(1).mean()
        return output, LOSS_WEIGHT * loss
