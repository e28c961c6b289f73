"""`vidgen train fuse`: learn to fuse N damaged views of a clip into the clean clip.

Samples are clean windows of `window` frames; the views are made on the fly by
`vidgen.train.degrade.degrade_views`. In training, the number of views N (drawn from
[min_views, max_views]) and every degradation come from torch's global RNG, which the trainer saves
and restores, so a resumed run sees exactly the views an uninterrupted one would. Validation uses
`val_views` views from a generator seeded by the batch's own content, so every validation of a run
(and every run on the same footage) scores the same views.

Scores (higher is better): `psnr` of the model, and the naive answers on the same views:
`mean_psnr`, `median_psnr` (per-pixel mean/median of the views), `best_view_psnr` (the single best
view of each sample, an oracle choice) and `baseline_psnr`, the best of those three per sample.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vidgen.errors import UsageError
from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr


class FuseTask(TaskDefaults):
    name = "fuse"
    window = 4
    metric = "psnr"
    baseline = "baseline_psnr"

    def __init__(self, min_views: int = 2, max_views: int = 4, val_views: int | None = None, val_seed: int = 0) -> None:
        if not 1 <= min_views <= max_views:
            raise UsageError(f"[task_options] min_views={min_views}, max_views={max_views}: "
                             "need 1 <= min_views <= max_views")
        self.min_views = int(min_views)
        self.max_views = int(max_views)
        self.val_views = int(val_views) if val_views is not None else min(max(3, self.min_views), self.max_views)
        if self.val_views < 1:
            raise UsageError(f"[task_options] val_views={val_views}: must be at least 1")
        self.val_seed = int(val_seed)

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def make_views(self, clean: Tensor, generator: torch.Generator | None = None, views: int | None = None) -> Tensor:
        from vidgen.train.degrade import degrade_views

        if views is None:
            views = int(torch.randint(self.min_views, self.max_views + 1, (), generator=generator))
        return degrade_views(clean, views, generator)

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            views = self.make_views(batch)
        prediction, extra = forward(views, batch)
        total, terms = loss_fn(prediction, batch)
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        from vidgen.train.degrade import content_seed

        generator = torch.Generator().manual_seed(content_seed(batch, self.val_seed))
        views = self.make_views(batch.float(), generator, self.val_views)
        scores = naive_scores(views, batch)
        scores["psnr"] = batch_psnr(model(views).float(), batch)
        return scores


def naive_scores(views: Tensor, clean: Tensor) -> dict[str, Tensor]:
    """Per-sample PSNR of the per-pixel mean and median of (B, N, T, 3, H, W) views, of the best view, and the best of all."""
    from vidgen.models.fusion import robust_median

    mean = batch_psnr(views.mean(1), clean)
    median = batch_psnr(robust_median(views, 1), clean)
    best_view = torch.stack([batch_psnr(views[:, i], clean) for i in range(views.shape[1])], 1).amax(1)
    return {"mean_psnr": mean, "median_psnr": median, "best_view_psnr": best_view,
            "baseline_psnr": torch.stack([mean, median, best_view], 1).amax(1)}
