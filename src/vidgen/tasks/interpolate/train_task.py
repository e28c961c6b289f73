"""The interpolation training task: frame triplets, the middle frame predicted from the outer two."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from vidgen.train.tasks import TaskDefaults, TrainingOutputs, batch_psnr


class InterpolateTask(TaskDefaults):
    """Frame triplets (f0, f1, f2): the model sees f0 and f2 and predicts f1; baseline: their average."""

    name = "interpolate"
    window = 3
    metric = "psnr"
    baseline = "blend_psnr"

    def training_forward(self, model: nn.Module) -> nn.Module:
        return TrainingOutputs(model)

    def loss(self, forward: nn.Module, batch: Tensor, loss_fn: Any) -> tuple[Tensor, dict[str, Tensor]]:
        img0, target, img1 = batch[:, 0], batch[:, 1], batch[:, 2]
        prediction, extra = forward(img0, img1, target)
        total, terms = loss_fn(prediction, target)
        for name, value in extra.items():
            total = total + value
            terms[name] = value
        return total, terms

    def score(self, model: nn.Module, batch: Tensor) -> dict[str, Tensor]:
        img0, target, img1 = batch[:, 0], batch[:, 1], batch[:, 2]
        return {
            "psnr": batch_psnr(model(img0, img1), target),
            "blend_psnr": batch_psnr((img0 + img1) / 2, target),
        }
