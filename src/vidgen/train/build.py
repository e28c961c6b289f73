"""What a run trains: the arch checked against the task, the model built (fresh or from `--init`), the
parameters it trains, the forward the loss calls, the optimizer and the EMA of the weights.

- The model's config is `arch defaults < [model] options < keys the task derived from its data`; with
  `--init ENTRY` it is `arch defaults < the entry's config < [model]`, the entry's weights loaded
  strictly. `[model]` options on top of `--init` may only add modules: every tensor of the entry must
  find a place of the same shape, and only the new modules start from their initialisation.
- `--train-only PREFIX...` sets `requires_grad` on the parameters under those module names alone; the
  optimizer (AdamW) gets only those.
- Errors are `UsageError`s naming the option at fault.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from vidgen.errors import UsageError
from vidgen.train.distributed import DistContext
from vidgen.train.tasks import TrainTask, Trainable

log = logging.getLogger("vidgen.train")


def arch_spec(config: Any) -> Any:
    """The arch of `config`, checked against its task and crop sizes (before any footage is read)."""
    from vidgen.registry.archs import get_arch

    spec = get_arch(config.arch)
    if spec.task != config.task:
        raise UsageError(f"arch {spec.name!r} is for {spec.task!r}, not {config.task!r}",
                         hint=f"`vidgen train {config.task}` lists the archs for it")
    multiple = spec.capabilities.spatial_multiple
    for name in ("crop", "val_crop"):
        size = getattr(config, name)
        if size is not None and size % multiple:
            raise UsageError(f"--{name.replace('_', '-')} {size} is not a multiple of {multiple}, "
                             f"which arch {spec.name!r} needs", hint=f"use {max(multiple, size // multiple * multiple)}")
    return spec


def task_model_config(task: TrainTask, config: Any) -> dict[str, Any]:
    """Arch config keys the task fixed from its data; a [model] option saying otherwise is an error."""
    derived = dict(task.model_config())
    for key, value in derived.items():
        if key in config.model and config.model[key] != value:
            raise UsageError(f"[model] {key} = {config.model[key]!r} contradicts the task's {value!r}",
                             hint=f"the {config.task} task sets {key} from the data and frozen models; drop it")
    return derived


def build_model(spec: Any, config: Any, task: TrainTask) -> tuple[nn.Module, dict[str, Any]]:
    """(model in training mode on the CPU, its full arch config); draws from the global torch RNG."""
    derived = task_model_config(task, config)
    if config.init:
        from vidgen.registry import load_model

        entry, model = load_model(config.init, device="cpu")
        if entry.arch != spec.name:
            raise UsageError(f"--init {config.init} is arch {entry.arch!r}, not {spec.name!r}")
        arch_config = {**spec.defaults, **entry.config, **config.model}
        if arch_config != {**spec.defaults, **entry.config}:
            # [model] options on top of --init: the changed network starts from every weight of the old one,
            # and only modules the old one lacks start fresh (to add a part to a trained model).
            model = grown_model(spec, arch_config, model.state_dict(), config.init)
        if derived and {**arch_config, **derived} != arch_config:
            # The task's data changed config keys (a vocabulary, say): rebuild, keep the weights if they fit.
            arch_config = {**arch_config, **derived}
            state = model.state_dict()
            model = spec.build(**arch_config)
            try:
                model.load_state_dict(state, strict=True)
            except RuntimeError as err:
                raise UsageError(f"--init {config.init} does not fit this data's {sorted(derived)}",
                                 hint=str(err).strip().splitlines()[0]) from None
        model.train()
    else:
        arch_config = {**spec.defaults, **config.model, **derived}
        model = spec.build(**arch_config)
    if not isinstance(model, Trainable):
        raise UsageError(f"arch {spec.name!r} has nothing to train", hint="pick a network arch")
    return model, arch_config


def grown_model(spec: Any, arch_config: dict[str, Any], state: dict[str, Any], init: str) -> nn.Module:
    """`spec` built with `arch_config`, holding every tensor of `state`: its new modules are what is left."""
    model = spec.build(**arch_config)
    own = model.state_dict()
    misfits = sorted(k for k, v in state.items() if k not in own or own[k].shape != v.shape)
    if misfits:
        raise UsageError(f"--init {init} does not fit the [model] options: {len(misfits)} of its tensors have "
                         f"no place of that shape, e.g. {misfits[0]}",
                         hint="[model] options on top of --init may only add parts to the network")
    model.load_state_dict(state, strict=False)
    fresh = sorted({k.split(".")[0] for k in own if k not in state})
    log.warning("--init %s: all its weights kept; new: %s", init, ", ".join(fresh) or "nothing")
    return model


def trainable_parameters(model: nn.Module, prefixes: list[str] | tuple[str, ...]) -> list[nn.Parameter]:
    """The parameters `--train-only` names (all by default); the others stop requiring gradients."""
    if not prefixes:
        return list(model.parameters())
    chosen = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(any(name == p or name.startswith(p.rstrip(".") + ".") for p in prefixes))
        if parameter.requires_grad:
            chosen.append(parameter)
    if not chosen:
        raise UsageError(f"--train-only {' '.join(prefixes)}: names no parameter of this model",
                         hint="prefixes are module names, e.g. " + ", ".join(sorted({n.split('.')[0] for n, _ in model.named_parameters()})[:6]))
    return chosen


def training_forward(task: TrainTask, model: nn.Module, dist: DistContext, device: torch.device,
                     compiled: bool) -> nn.Module:
    """The module the task's loss calls: the task's training forward, in DDP under torchrun, compiled on request.

    Call it after `trainable_parameters`: DDP registers the parameters that require gradients."""
    forward: nn.Module = task.training_forward(model)
    if dist.enabled:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[device.index] if device.type == "cuda" else None)
    if compiled:
        forward = torch.compile(forward)  # type: ignore[assignment]
    return forward


def make_optimizer(parameters: list[nn.Parameter], config: Any) -> torch.optim.Optimizer:
    """AdamW over `parameters` at `--lr` with `--weight-decay`."""
    return torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)


def make_ema(model: nn.Module, decay: float) -> Any:
    """An exponential moving average of `model`'s weights (`decay` per step), or None when `decay` is 0."""
    if not decay > 0:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))
