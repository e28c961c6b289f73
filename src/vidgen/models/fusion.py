"""Fusion of N views of one scene into one clean video: cross-attention over the view axis.

`FusionNet(views)` maps (B, N, T, 3, H, W) views in [0, 1] to one (B, T, 3, H, W) video, for any
N >= 1 and any H, W (padded inside to the spatial multiple, cropped back). It has no per-view
parameters and no position code over views, so its output does not depend on the order of the views.

1. The per-pixel median of the views (`robust_median`: the mean of the two middle values for even N)
   is the robust reference. Each view is also brought to the median's exposure and colour
   (`photometric_align`: per frame and channel, a robust quadratic fit from the view to the median),
   which undoes global gain, white balance and gamma differences between takes. `reliability_cues`
   then compares each aligned view with the median in kind: how much it changed since its previous frame
   (a dropped frame, a repeat, barely changes) and how much fine and medium detail it has locally (noise
   adds fine detail, blur removes both).
2. Each view is encoded per frame together with its aligned copy, the reference, both absolute
   differences from it and its cues (18 channels) by a shared ResNet-style encoder: a narrow conv stem at full
   resolution (base_channels / 2 wide), then residual stages at 1/2 and 1/4 resolution (and 1/8 with
   `levels=3`), base_channels x 1, 2 (, 3) wide.
3. At every position of the coarsest level and every frame, the N view features, each plus a summary
   of the view's whole frame (a projection of its mean over positions, so a view can be judged as a
   whole: "this take is noisy"), attend to each other (`blocks` pre-norm transformer blocks over the
   view axis: multi-head self-attention + MLP). A score per view and position, softmaxed over the
   views, pools them into one feature map.
4. Optionally (`temporal_radius` > 0) the pooled features attend across time at each position, to
   frames at most `temporal_radius` away (banded mask, learned relative-position bias per head).
   `temporal_context` is how many frames on each side can reach a frame's output (the attention's reach
   plus the one frame the repeat cue looks back), so a caller that processes a long video in chunks
   gives each chunk that many frames of context and keeps the middle.
5. A decoder upsamples with skips that are permutation-invariant too: the mean over the views of the
   encoder's features at each finer level and their mean weighted by the (upsampled) pooling weights,
   the reference's own features, and the image made by blending the views with those weights.
6. At full resolution a selection head scores, per pixel, every view and every aligned view (from the
   view's own features and the decoded ones); with a score for the median (also decoded from the
   features), and minus a robust prior (`robust_sharpness` x the candidate's squared distance from the
   median over a 5x5 neighbourhood, `local_deviation`: a view that disagrees with the others there, an
   occluder or an exposure outlier, counts little; views that agree are averaged, which denoises), they
   are softmaxed into weights. The output is the weighted sum of those 2N + 1 candidates plus a residual
   decoded from the features, that sum and the spread of the candidates around it under those weights
   (large only where the selection could not tell which candidate is right, as for two views that
   disagree). Untrained, it is already a robust average that ignores one view's occluder (the residual
   starts small); training learns to pick the clean parts of each view and to restore what no view has
   clean.
7. Optionally (`choose_photometry`), the result is re-expressed in the exposure and colour of the view a
   small network picks (`vidgen.models.photometry.PhotometryChoice`): where most views are shifted, the
   median's photometry, which every step above follows, is a mixture of wrong ones. This step needs whole
   frames, so `forward` is `finish(fuse_tile(views), views)` and a caller that fuses on tiles runs
   `fuse_tile` on each and `finish` once on the whole frames.

`training_outputs(views, clean)` returns (prediction, {}), or with the photometry choice (prediction,
{"photometry": its cross-entropy against the candidate closest to the clean clip}).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidgen.models.photometry import PhotometryChoice, photometric_align
from vidgen.archs import ALL_FLOAT_DTYPES, Capabilities, register_arch

SPATIAL_MULTIPLE = 8


def robust_median(views: Tensor, dim: int = 1) -> Tensor:
    """Per-element median over `dim`; for an even count the mean of the two middle values (like NumPy)."""
    count = views.shape[dim]
    if count <= 2:
        return views.mean(dim)
    ordered = views.sort(dim).values
    middle = ordered.narrow(dim, (count - 1) // 2, 2 - count % 2)
    return middle.mean(dim)


def reliability_cues(views: Tensor, reference: Tensor, size: int = 7) -> Tensor:
    """(B, N, T, 3, H, W) views (best aligned to `reference`'s exposure) -> (B, N, T, 3, H, W) cues of how each
    view differs from the reference (B, T, 3, H, W) in kind rather than in value, as log ratios (0: like the
    reference; clamped to +-5):

    0. repeat: the view's mean change from its previous frame over the reference's (one number per frame,
       0 for the first frame). A dropped frame, a repeat of the one before, gives a large negative value.
    1. fine detail: local energy (`size` x `size` mean) of the luma's finest band (the image less its 3x3
       mean), over the reference's. Noise raises it, blur lowers it.
    2. medium detail: the same for the band between the 3x3 and 9x9 means, where noise counts less.
    """
    b, n, t, c, h, w = views.shape
    eps = 1e-4
    change = (views[:, :, 1:] - views[:, :, :-1]).abs().mean((3, 4, 5))  # (B, N, T-1)
    ref_change = (reference[:, 1:] - reference[:, :-1]).abs().mean((2, 3, 4)).unsqueeze(1)
    repeat = torch.log((change + eps) / (ref_change + eps))
    repeat = F.pad(repeat, (1, 0)).view(b, n, t, 1, 1, 1).expand(b, n, t, 1, h, w)

    def bands(x: Tensor) -> Tensor:  # (M, 3, H, W) -> (M, 2, H, W) local energies of two bands of the luma
        luma = x.mean(1, keepdim=True)
        small = F.avg_pool2d(luma, 3, 1, 1, count_include_pad=False)
        large = F.avg_pool2d(luma, 9, 1, 4, count_include_pad=False)
        energy = torch.cat([luma - small, small - large], 1) ** 2
        return F.avg_pool2d(energy, size, 1, size // 2, count_include_pad=False)

    view_bands = bands(views.reshape(-1, c, h, w)).view(b, n, t, 2, h, w)
    ref_bands = bands(reference.reshape(-1, c, h, w)).view(b, 1, t, 2, h, w)
    # 1e-5: about the energy of 8-bit rounding and film grain
    detail = torch.log((view_bands + 1e-5) / (ref_bands + 1e-5))
    return torch.cat([repeat, detail], 3).clamp(-5, 5)


def local_deviation(candidates: Tensor, reference: Tensor, size: int = 5) -> Tensor:
    """(B, K, T, 1, H, W): each candidate's squared distance from `reference` (B, T, 3, H, W), summed over
    the channels and averaged over a `size` x `size` neighbourhood."""
    b, k, t, c, h, w = candidates.shape
    squared = ((candidates - reference.unsqueeze(1)) ** 2).sum(3).reshape(b * k * t, 1, h, w)
    local = F.avg_pool2d(squared, size, 1, size // 2, count_include_pad=False)
    return local.view(b, k, t, 1, h, w)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.conv2(self.act(self.conv1(x))))


def _stage(in_channels: int, out_channels: int, stride: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1), nn.LeakyReLU(0.1, inplace=True),
                         *[ResBlock(out_channels) for _ in range(blocks)])


class ViewAttentionBlock(nn.Module):
    """Pre-norm transformer block over a short token axis: (S, L, C) -> (S, L, C)."""

    def __init__(self, channels: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.norm2 = nn.LayerNorm(channels)
        hidden = int(channels * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def attend(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        s, length, c = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(s, length, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        # Written out rather than F.scaled_dot_product_attention: the sequences are short (N views, or a few
        # frames) and very many (one per position), and on an H100 (torch 2.11) training failed with both
        # cuDNN's fused kernel ("mha_graph.execute ... is_good()") and, without it, "CUDA error: invalid argument"
        # (65,536 sequences x 4 heads at batch 16, crop 128: more than a 65,535-block grid axis, we suppose).
        logits = (q @ k.transpose(-1, -2)) * (c // self.heads) ** -0.5
        if bias is not None:
            logits = logits + bias
        out = logits.softmax(-1) @ v
        return self.proj(out.transpose(1, 2).reshape(s, length, c))

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        x = x + self.attend(x, bias)
        return x + self.mlp(self.norm2(x))


class TemporalAttentionBlock(ViewAttentionBlock):
    """Attention across frames at each position, within +-radius frames, with a relative-position bias."""

    def __init__(self, channels: int, heads: int, radius: int) -> None:
        super().__init__(channels, heads)
        self.radius = radius
        self.relative_bias = nn.Parameter(torch.zeros(heads, 2 * radius + 1))

    def forward(self, x: Tensor, bias: Tensor | None = None) -> Tensor:
        length = x.shape[1]
        position = torch.arange(length, device=x.device)
        offset = position[None, :] - position[:, None]  # key - query
        inside = offset.abs() <= self.radius
        index = offset.clamp(-self.radius, self.radius) + self.radius
        band = self.relative_bias[:, index]  # (heads, L, L)
        band = band.masked_fill(~inside, float("-inf")).to(x.dtype)
        return super().forward(x, band.unsqueeze(0))


class FusionNet(nn.Module):
    def __init__(self, base_channels: int = 48, levels: int = 2, blocks: int = 2, heads: int = 4,
                 temporal_radius: int = 1, temporal_blocks: int = 1, res_blocks: int = 1,
                 robust_sharpness: float = 100.0, choose_photometry: bool = False) -> None:
        super().__init__()
        if levels not in (2, 3):
            raise ValueError(f"levels must be 2 (features at 1/4) or 3 (1/8), got {levels}")
        # Full resolution is where the time goes (N views x T frames of it): a narrow stem there, no residual blocks.
        widths = [max(8, base_channels // 2)] + [base_channels * m for m in (1, 2, 3)[:levels]]
        if widths[-1] % heads:
            raise ValueError(f"the deepest width {widths[-1]} is not a multiple of heads={heads}")
        self.levels = levels
        self.temporal_radius = temporal_radius
        # +1: the repeat cue of `reliability_cues` looks one frame back.
        self.temporal_context = (temporal_radius * temporal_blocks if temporal_radius > 0 else 0) + 1
        self.encoder = nn.ModuleList([_stage(18, widths[0], 1, 0)])
        for level in range(1, levels + 1):
            self.encoder.append(_stage(widths[level - 1], widths[level], 2, res_blocks + (level == levels)))
        self.reference = nn.ModuleList([_stage(3, widths[0], 1, 0)])
        for level in range(1, levels):
            self.reference.append(_stage(widths[level - 1], widths[level], 2, 0))
        deep = widths[-1]
        self.view_blocks = nn.ModuleList([ViewAttentionBlock(deep, heads) for _ in range(blocks)])
        self.view_summary = nn.Linear(deep, deep)
        self.pool_score = nn.Linear(deep, 1)
        self.temporal_blocks = nn.ModuleList(
            [TemporalAttentionBlock(deep, heads, temporal_radius) for _ in range(temporal_blocks if temporal_radius > 0 else 0)])
        self.bottleneck = ResBlock(deep)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for level in range(levels - 1, -1, -1):
            self.up.append(nn.Sequential(nn.ConvTranspose2d(widths[level + 1], widths[level], 4, 2, 1),
                                         nn.LeakyReLU(0.1, inplace=True)))
            extra = 6 if level == 0 else 0  # at full resolution: the median and the attention-weighted blend
            self.merge.append(_stage(4 * widths[level] + extra, widths[level], 1, 1))
        # The residual sees what the selection chose, so it corrects that rather than guessing blind, and how much
        # the candidates it chose disagree (large only where it could not tell which is right: then it hedges).
        self.head = nn.Sequential(nn.Conv2d(widths[0] + 4, widths[0], 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(widths[0], 3, 3, 1, 1))
        # Per view: its stem features, the decoded features, the view, its aligned copy, their differences
        # from the median, its reliability cues -> a score for the view and one for the aligned view.
        self.select = nn.Sequential(nn.Conv2d(2 * widths[0] + 15, widths[0], 3, 1, 1), nn.LeakyReLU(0.1, inplace=True),
                                    nn.Conv2d(widths[0], 2, 3, 1, 1))
        self.median_score = nn.Conv2d(widths[0], 1, 3, 1, 1)  # the median's score, from the decoded features
        self.robust_sharpness = float(robust_sharpness)
        with torch.no_grad():  # start close to the median, still letting gradients reach every layer
            for last in (self.head[-1], self.select[-1], self.median_score):
                last.weight.mul_(0.1)
                last.bias.zero_()
            self.median_score.bias.fill_(2.0)
        # A decision about whole frames: `finish` runs on whole frames even when the rest runs on tiles.
        self.photometry = PhotometryChoice() if choose_photometry else None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(spatial_multiple=SPATIAL_MULTIPLE, dtypes=ALL_FLOAT_DTYPES,
                            temporal_context=self.temporal_context, finishes_whole_frames=self.photometry is not None)

    def forward(self, views: Tensor) -> Tensor:
        return self.finish(self.fuse_tile(views), views)

    def finish(self, fused: Tensor, views: Tensor) -> Tensor:
        """The steps that need whole frames (the choice of photometry), on the (B, T, 3, H, W) result of
        `fuse_tile` (or of tiles of it put together) and the (B, N, T, 3, H, W) views."""
        return self.photometry(fused, views) if self.photometry is not None else fused

    def fuse_tile(self, views: Tensor) -> Tensor:
        """(B, N, T, 3, H, W) views -> (B, T, 3, H, W), every step but `finish` (what may run on tiles)."""
        if views.dim() != 6 or views.shape[3] != 3:
            raise ValueError(f"expected views (B, N, T, 3, H, W), got shape {tuple(views.shape)}")
        b, n, t, _, h, w = views.shape
        multiple = 2**self.levels
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            flat = F.pad(views.reshape(-1, 3, h, w), (0, pw, 0, ph), mode="replicate")
            views = flat.view(b, n, t, 3, h + ph, w + pw)
        out = self._fuse(views)
        return out[..., :h, :w]

    def _fuse(self, views: Tensor) -> Tensor:
        b, n, t, _, h, w = views.shape
        median = robust_median(views, 1)  # (B, T, 3, H, W)
        aligned = photometric_align(views, median)
        reference = median.unsqueeze(1).expand_as(views)
        differences = torch.cat([(views - reference).abs(), (aligned - reference).abs()], 3)
        cues = reliability_cues(aligned, median)
        x = torch.cat([views, aligned, reference, differences, cues], 3).reshape(b * n * t, 18, h, w)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        deep = skips.pop()  # (B*N*T, C, h', w')
        c, hd, wd = deep.shape[1:]
        per_view = deep.view(b, n, t, c, hd, wd)
        summary = self.view_summary(per_view.mean((4, 5)))  # (B, N, T, C): each view's frame as a whole
        tokens = per_view.permute(0, 2, 4, 5, 1, 3) + summary.transpose(1, 2).view(b, t, 1, 1, n, c)
        tokens = tokens.reshape(-1, n, c)  # (B*T*h*w, N, C)
        for block in self.view_blocks:
            tokens = block(tokens)
        weights = self.pool_score(tokens).softmax(1)  # (S, N, 1)
        pooled = (weights * tokens).sum(1).view(b, t, hd, wd, c)
        if len(self.temporal_blocks):
            seq = pooled.permute(0, 2, 3, 1, 4).reshape(b * hd * wd, t, c)
            for block in self.temporal_blocks:
                seq = block(seq)
            pooled = seq.view(b, hd, wd, t, c).permute(0, 3, 1, 2, 4)
        y = self.bottleneck(pooled.permute(0, 1, 4, 2, 3).reshape(b * t, c, hd, wd))

        # The attention's pooling weights, upsampled to every finer level: they pool the encoder's skips and,
        # at full resolution, blend the views.
        coarse_weights = weights.view(b, t, hd, wd, n).permute(0, 1, 4, 2, 3).reshape(b * t, n, hd, wd)

        def pool(skip: Tensor) -> Tensor:  # (B*N*T, C, h, w) -> (B*T, C, h, w), weighted over the views
            size = skip.shape[-2:]
            weight_map = F.interpolate(coarse_weights, size=size, mode="bilinear", align_corners=False)
            per_view = skip.view(b, n, t, -1, *size).transpose(1, 2)
            return (weight_map.view(b, t, n, 1, *size) * per_view).sum(2).flatten(0, 1)

        blend = pool(views.reshape(b * n * t, 3, h, w)).view(b, t, 3, h, w)

        ref = median.reshape(b * t, 3, h, w)
        ref_feats = []
        for stage in self.reference:
            ref = stage(ref)
            ref_feats.append(ref)
        for up, merge, level in zip(self.up, self.merge, range(self.levels - 1, -1, -1)):
            y = up(y)
            skip = skips[level]
            # The mean over the views and the attention-weighted one (a max over the views would carry an occluder).
            parts = [y, skip.view(b, n, t, *skip.shape[1:]).mean(1).flatten(0, 1), pool(skip), ref_feats[level]]
            if level == 0:
                parts += [median.reshape(b * t, 3, h, w), blend.reshape(b * t, 3, h, w)]
            y = merge(torch.cat(parts, 1))
        stem = skips[0].view(b, n, t, -1, h, w)
        decoded = y.view(b, 1, t, -1, h, w).expand(b, n, t, y.shape[1], h, w)
        scores = self.select(torch.cat([stem, decoded, views, aligned, differences, cues], 3).flatten(0, 2))
        scores = scores.view(b, n, t, 2, 1, h, w).permute(0, 3, 1, 2, 4, 5, 6).reshape(b, 2 * n, t, 1, h, w)
        scores = torch.cat([scores, self.median_score(y).view(b, 1, t, 1, h, w)], 1)
        candidates = torch.cat([views, aligned, median.unsqueeze(1)], 1)  # (B, 2N + 1, T, 3, H, W)
        if self.robust_sharpness:  # the robust prior: a candidate far from the median nearby counts less
            scores = scores - self.robust_sharpness * local_deviation(candidates, median).to(scores.dtype)
        selection = scores.softmax(1)
        chosen = (selection * candidates).sum(1)  # (B, T, 3, H, W)
        spread = (selection * (candidates - chosen.unsqueeze(1)) ** 2).sum((1, 3)).add(1e-6).sqrt()  # (B, T, H, W)
        residual = self.head(torch.cat([y, chosen.reshape(b * t, 3, h, w).to(y.dtype),
                                        spread.reshape(b * t, 1, h, w).to(y.dtype)], 1))
        return (chosen + residual.view(b, t, 3, h, w)).float()

    def training_outputs(self, views: Tensor, clean: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.photometry is None:
            return self(views), {}
        output, loss = self.photometry.training_outputs(self.fuse_tile(views), views, clean)
        return output, {"photometry": loss}


@register_arch(
    "fusion",
    task="fuse",
    spatial_multiple=SPATIAL_MULTIPLE,
    dtypes=ALL_FLOAT_DTYPES,
    defaults={"base_channels": 48, "levels": 2, "blocks": 2, "heads": 4, "temporal_radius": 1,
              "temporal_blocks": 1, "res_blocks": 1, "robust_sharpness": 100.0, "choose_photometry": False},
)
def build_fusion(base_channels: int = 48, levels: int = 2, blocks: int = 2, heads: int = 4, temporal_radius: int = 1,
                 temporal_blocks: int = 1, res_blocks: int = 1, robust_sharpness: float = 100.0,
                 choose_photometry: bool = False) -> FusionNet:
    """Fuse N views of one scene with cross-attention over the views (~1.1M parameters at the defaults)."""
    return FusionNet(base_channels=base_channels, levels=levels, blocks=blocks, heads=heads,
                     temporal_radius=temporal_radius, temporal_blocks=temporal_blocks, res_blocks=res_blocks,
                     robust_sharpness=robust_sharpness, choose_photometry=choose_photometry)
