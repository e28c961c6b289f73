"""The one trainer: any registered arch of any task in `vidgen.train.tasks`, on folders of videos.

AdamW with linear warmup and cosine decay (over the steps, or over a wall-time budget), gradient
accumulation and clipping, AMP on CUDA (bf16, or fp16 with a gradient scaler), optional torch.compile
and EMA of the weights, early stopping on the validation metric, seeded and resumable to the exact
sample. Under torchrun the same code runs DistributedDataParallel; rank 0 alone writes the run folder
(layout in `vidgen.train.checkpoint`; who may use it, its lock and what a failed run leaves in
`vidgen.train.run_folder`).

Tasks shape the data through two optional hooks (the others get `FrameWindows` of video frames):
`task.make_dataset(videos, train=, config=, cache_dir=, device=)` returns the task's own Dataset, whose
samples may be tensors or tuples/dicts of them (batched by `default_collate`, moved by `to_device`), and
`task.model_config()` returns arch config keys the task fixed from that data (vocabulary size, grid),
merged into the model's config after the datasets are made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import default_collate

from vidgen.errors import UsageError, VidgenError, short_reason
from vidgen.files import atomic_output
from vidgen.train import checkpoint as ckpt
from vidgen.train.config import TrainConfig, write_config
from vidgen.train.distributed import DistContext, ResumableSampler, init_distributed, shutdown
from vidgen.train.run_folder import RunFolder
from vidgen.train.tasks import TrainTask, get_task

log = logging.getLogger("vidgen.train")


@dataclass
class RunState:
    """Counters that, with the RNG states, place a run exactly: restored on --resume."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` consumed by completed optimizer steps
    best: float = -math.inf
    best_step: int = 0
    bad_validations: int = 0
    seconds: float = 0.0  # training-loop wall time so far (what --minutes budgets)


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best: float
    best_step: int
    baseline: float | None
    stopped_early: bool
    metric: str = "psnr"


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup to 1, then cosine decay to 0 at `total`."""
    return warmup_cosine(step, warmup, (step - warmup) / max(total - warmup, 1))


def warmup_cosine(step: int, warmup: int, progress: float) -> float:
    """Linear warmup to 1 over `warmup` steps, then cosine decay to 0 as `progress` goes from 0 to 1."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False



def _worker_context(workers: int) -> str | None:
    """Start DataLoader workers from a fork server where there is one: a plain fork copies whatever locks
    other libraries' thread pools (OpenMP, BLAS) held in this process, and such a worker can deadlock or
    crash (seen after scikit-learn and a text encoder had run in the same process)."""
    import multiprocessing

    if workers and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return None


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch (tensor, or tuple/list/dict of them, nested) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(item, device) for item in batch)
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items()}
    return batch


def _amp_dtype(mode: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or mode == "off":
        return None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


class Trainer:
    def __init__(self, config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 should_stop: Callable[[int], bool] | None = None) -> None:
        from vidgen.runtime.devices import resolve_device

        config.validate()
        self.config = config
        self.resume = resume
        self.progress = progress
        self.should_stop = should_stop
        # Before anything is read or built: may this run use the folder? (Checked again under its lock.)
        self.folder = RunFolder(Path(config.out), resume=resume, overwrite=overwrite)  # type: ignore[arg-type]
        self.folder.check()
        self._saved: dict[str, Any] | None = None  # the state --resume restores, read before the data
        self._saved_step: int | None = None  # the step of the newest last.state.pt
        self._resumed_from = 0  # the step this run started from
        self.task: TrainTask = get_task(config.task, config.task_options)
        device = resolve_device(config.device)
        self.dist: DistContext = init_distributed(device)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.run_dir = Path(config.out)  # type: ignore[arg-type]
        self.amp_dtype = _amp_dtype(config.amp, device)
        self._tensorboard: Any = None

    # --- setup -----------------------------------------------------------------------------------

    def _arch_spec(self) -> Any:
        """The arch, checked against the task and the crop sizes before any footage is read."""
        from vidgen.registry.archs import get_arch

        config = self.config
        spec = get_arch(config.arch)  # type: ignore[arg-type]
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

    def _task_model_config(self) -> dict[str, Any]:
        """Arch config keys the task fixed from its data; a [model] option saying otherwise is an error."""
        derived = dict(self.task.model_config()) if hasattr(self.task, "model_config") else {}
        for key, value in derived.items():
            if key in self.config.model and self.config.model[key] != value:
                raise UsageError(f"[model] {key} = {self.config.model[key]!r} contradicts the task's {value!r}",
                                 hint=f"the {self.config.task} task sets {key} from the data and frozen models; drop it")
        return derived

    def _build_model(self, spec: Any) -> tuple[nn.Module, dict[str, Any]]:
        config = self.config
        derived = self._task_model_config()
        if config.init:
            from vidgen.registry import load_model

            entry, model = load_model(config.init, device="cpu")
            if entry.arch != spec.name:
                raise UsageError(f"--init {config.init} is arch {entry.arch!r}, not {spec.name!r}")
            arch_config = {**spec.defaults, **entry.config, **config.model}
            if arch_config != {**spec.defaults, **entry.config}:
                # [model] options on top of --init: the changed network starts from every weight of the old one,
                # and only modules the old one lacks start fresh (to add a part to a trained model).
                model = self._grown(spec, arch_config, model.state_dict(), config.init)
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
        if not hasattr(model, "training_outputs"):
            raise UsageError(f"arch {spec.name!r} has nothing to train", hint="pick a network arch")
        return model, arch_config

    def _trainable(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters `--train-only` names (all by default); the others stop requiring gradients."""
        prefixes = self.config.train_only
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

    def _grown(self, spec: Any, arch_config: dict[str, Any], state: dict[str, Any], init: str) -> nn.Module:
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

    def _split(self) -> Any:
        from vidgen.train.data import DataSplit, find_videos, split_videos

        config = self.config
        split_file = self.run_dir / "split.json"
        if self.resume and split_file.is_file():
            try:
                return DataSplit.from_json(json.loads(split_file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as err:
                raise ckpt.damaged(split_file, "a vidgen run's split", short_reason(err)) from None
        root = Path(config.data)  # type: ignore[arg-type]
        if not root.exists():
            raise UsageError(f"--data {root} does not exist")
        if config.val:
            val_root = Path(config.val)
            if not val_root.exists():
                raise UsageError(f"--val {val_root} does not exist")
            split = DataSplit(train=find_videos(root), val=find_videos(val_root), test=[], seed=config.seed,
                              ratios=(1.0, 0.0, 0.0), root=root, stratified=False)
            overlap = {p.resolve() for p in split.train} & {p.resolve() for p in split.val}
            if overlap:
                raise UsageError(f"{len(overlap)} video(s) are in both --data and --val",
                                 hint="validation footage must be held out of training")
            return split
        return split_videos(root, seed=config.seed)

    def _datasets(self, split: Any) -> tuple[Any, Any, list[int]]:
        from vidgen.train.data import FrameWindows

        config = self.config
        cache_dir = self.run_dir / "cache" if config.cache else None
        make_dataset = getattr(self.task, "make_dataset", None)
        if make_dataset is not None:
            def build(videos: list[Path], train: bool) -> Any:
                # Whatever the task builds (frozen models, say) must not move the RNG that initialises the model.
                with torch.random.fork_rng(devices=[]):
                    return make_dataset(videos, train=train, config=config, cache_dir=cache_dir, device=self.device)
        else:
            common = dict(window=config.window or self.task.window, stride=config.stride, seed=config.seed,
                          max_side=config.max_side, cache_dir=cache_dir)

            def build(videos: list[Path], train: bool) -> Any:
                crop = config.crop if train else config.val_crop
                return FrameWindows(videos, crop=crop, augment=train, color_jitter=config.color_jitter, **common)
        # Rank 0 indexes (and caches) first; the others then read its cache.
        if not self.dist.is_main:
            self.dist.barrier()
        train = build(split.train, True)
        if split.val:
            val = build(split.val, False)
        else:
            log.warning("no validation videos (pass --val DIR, or give --data 3+ videos to split): "
                        "validating on training windows, which measures fit, not generalisation")
            val = build(split.train, False)
        if self.dist.is_main:
            self.dist.barrier()
        for path, why in [*getattr(train, "skipped", []), *(getattr(val, "skipped", []) if val is not train else [])]:
            log.warning("skipped %s: %s", path, why)
        count = min(config.val_windows, len(val))
        picks = sorted({int(i) for i in torch.linspace(0, len(val) - 1, count).round().tolist()}) if count else []
        return train, val, picks

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        try:
            self._take_folder()
            failed = True
            try:
                if self.resume:
                    self._read_saved_run()
                result = self._run()
                failed = False
                return result
            finally:
                if self._tensorboard:
                    self._tensorboard.close()
                if self.dist.is_main:
                    self.folder.close(failed)
        finally:
            shutdown(self.dist)

    def _take_folder(self) -> None:
        """Rank 0 locks and (re)checks the run folder; every rank fails alike if it cannot."""
        problem: VidgenError | None = None
        if self.dist.is_main:
            try:
                self.folder.open()
            except VidgenError as err:
                problem = err
        verdict = self.dist.broadcast_object(
            None if problem is None else (problem.message, problem.hint, problem.exit_code))
        if problem is not None:
            raise problem
        if verdict is not None:
            message, hint, exit_code = verdict
            error = VidgenError(message, hint)
            error.exit_code = exit_code
            raise error

    def _read_saved_run(self) -> None:
        """--resume: read (and check) the saved state and weights before any footage is read."""
        self._saved = ckpt.load_state(ckpt.state_path(self.run_dir))
        for tag in ("last", "best"):
            weights = ckpt.weights_path(self.run_dir, tag)
            if weights.exists():
                ckpt.check_run_weights(weights, self.config.task, self.config.arch)  # type: ignore[arg-type]

    def _run(self) -> TrainResult:
        from vidgen.train.losses import build_loss

        config, dist = self.config, self.dist
        seed_everything(config.seed, config.deterministic)
        split = self._split()
        spec = self._arch_spec()
        if dist.is_main:
            self.folder.begin_writing()
            write_config(config, self.run_dir / "config.toml")
            with atomic_output(self.run_dir / "split.json") as tmp:
                tmp.write_text(json.dumps(split.to_json(), indent=1) + "\n", encoding="utf-8")
        train_set, val_set, val_picks = self._datasets(split)
        model, arch_config = self._build_model(spec)
        self.arch_config = arch_config
        loss_fn = build_loss(config.loss)

        model.to(self.device)
        self.model = model
        trainable = self._trainable(model)  # before DDP, which registers what requires gradients
        forward: nn.Module = self.task.training_forward(model)
        if dist.enabled:
            forward = nn.parallel.DistributedDataParallel(
                forward, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if config.compile:
            forward = torch.compile(forward)  # type: ignore[assignment]
        optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
        sampler = ResumableSampler(len(train_set), dist, seed=config.seed)
        batches_per_epoch = len(sampler) // config.batch_size
        steps_per_epoch = batches_per_epoch // config.accumulate
        if steps_per_epoch < 1:
            raise UsageError(f"{len(train_set)} training windows make no full step of "
                             f"{config.batch_size * config.accumulate * dist.world_size} samples",
                             hint="lower --batch-size/--accumulate or add footage")
        # Length: a step count (--steps, --epochs), or a wall-time budget (--minutes) that the cosine follows.
        budget = config.minutes * 60 if config.minutes is not None else None
        total = (config.steps if config.steps is not None
                 else config.epochs * steps_per_epoch if config.epochs is not None else None)
        warmup = min(config.warmup, total // 5) if total is not None else config.warmup
        clock = {"fraction": 0.0}  # elapsed share of the budget, agreed by all processes
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, warmup, total) if total is not None
            else warmup_cosine(s, warmup, clock["fraction"]))
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        ema = None
        if config.ema > 0:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema))
        state = RunState()
        if self.resume:
            state = self._restore(model, optimizer, scheduler, scaler, ema)
        self._resumed_from = state.step
        if budget is not None:
            clock["fraction"] = state.seconds / budget
        self._trim_metrics(state.step)

        baseline = None
        stopped_early = False
        samples_per_step = config.batch_size * config.accumulate * dist.world_size
        window_loss: list[float] = []
        window_start = time.perf_counter()
        progress = (self._progress(total, state.step) if total is not None
                    else self._progress(round(budget), round(state.seconds)))  # type: ignore[arg-type]
        seconds_before, loop_start = state.seconds, time.perf_counter()

        def finished() -> bool:
            return state.step >= total if total is not None else clock["fraction"] >= 1.0

        model.train()
        try:
            while not finished() and not stopped_early:
                sampler.set_epoch(state.epoch, skip=state.batches_in_epoch * config.batch_size)
                train_set.set_epoch(state.epoch)
                loader = torch.utils.data.DataLoader(
                    train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                    drop_last=True, pin_memory=self.device.type == "cuda",
                    generator=torch.Generator().manual_seed(config.seed + state.epoch),
                    persistent_workers=False, multiprocessing_context=_worker_context(config.workers),
                )
                micro = 0
                for batch in loader:
                    batch = to_device(batch, self.device)
                    micro += 1
                    sync = micro % config.accumulate == 0
                    with self._no_sync(forward, sync), self._autocast():
                        loss, terms = self.task.loss(forward, batch, loss_fn)
                    scaler.scale(loss / config.accumulate).backward()
                    if not sync:
                        continue
                    scaler.unscale_(optimizer)
                    if config.clip_grad > 0:
                        nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    state.seconds = seconds_before + time.perf_counter() - loop_start
                    if budget is not None:  # rank 0's clock decides, so every process stops at the same step
                        clock["fraction"] = float(dist.all_reduce_sum(torch.tensor(
                            [state.seconds / budget if dist.is_main else 0.0], dtype=torch.float64,
                            device=self.device)))
                    scheduler.step()
                    if ema is not None:
                        ema.update_parameters(model)
                    state.step += 1
                    state.batches_in_epoch += config.accumulate
                    window_loss.append(float(loss.detach()))
                    final = finished()
                    if state.step % config.log_every == 0 or final:
                        elapsed = time.perf_counter() - window_start
                        record = {"step": state.step, "epoch": state.epoch, "loss": sum(window_loss) / len(window_loss),
                                  **{f"loss_{k}": float(v.detach()) for k, v in terms.items()},
                                  "lr": scheduler.get_last_lr()[0],
                                  "samples_per_s": samples_per_step * len(window_loss) / max(elapsed, 1e-9),
                                  "seconds": round(state.seconds, 2)}
                        self._log(record)
                        if progress is not None:
                            progress.update(state.step if total is not None else round(state.seconds), record)
                        window_loss, window_start = [], time.perf_counter()
                    if state.step % config.val_every == 0 or final:
                        scores = self._validate(ema.module if ema is not None else model, val_set, val_picks)
                        baseline = scores.get(self.task.baseline, baseline)
                        stopped_early = self._after_validation(state, scores, ema)
                        model.train()
                    if state.step % config.save_every == 0 or final or stopped_early:
                        self._save_last(state, model, optimizer, scheduler, scaler, ema)
                    if self.should_stop is not None and self.should_stop(state.step):
                        raise KeyboardInterrupt
                    if final or stopped_early:
                        break
                else:
                    state.epoch += 1
                    state.batches_in_epoch = 0
        except KeyboardInterrupt:
            # Weights are only ever stepped whole, so the last completed step is a consistent place to resume
            # (unless no step was taken since the last save: then there is nothing new, or nothing, to keep).
            if state.step > 0 and state.step != self._saved_step:
                optimizer.zero_grad(set_to_none=True)
                self._save_last(state, model, optimizer, scheduler, scaler, ema)
            raise
        finally:
            if progress is not None:
                progress.close()
        return TrainResult(self.run_dir, state.step, state.best, state.best_step, baseline, stopped_early,
                           self.task.metric)

    @contextlib.contextmanager
    def _no_sync(self, forward: nn.Module, sync: bool) -> Iterator[None]:
        if not sync and isinstance(forward, nn.parallel.DistributedDataParallel):
            with forward.no_sync():
                yield
        else:
            yield

    def _autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # --- validation, checkpoints, logs -----------------------------------------------------------

    @torch.inference_mode()
    def _validate(self, model: nn.Module, val_set: Any, picks: list[int]) -> dict[str, float]:
        """Mean of each score over the fixed validation windows; computed on rank 0, shared with all."""
        scores: dict[str, float] = {}
        if self.dist.is_main and picks:
            model.eval()
            sums: dict[str, float] = {}
            for start in range(0, len(picks), self.config.batch_size):
                batch = default_collate([val_set[i] for i in picks[start:start + self.config.batch_size]])
                with self._autocast():
                    batch_scores = self.task.score(model, to_device(batch, self.device))
                for name, values in batch_scores.items():
                    sums[name] = sums.get(name, 0.0) + float(values.float().sum())
            scores = {name: total / len(picks) for name, total in sums.items()}
        return self.dist.broadcast_object(scores)

    def _after_validation(self, state: RunState, scores: dict[str, float], ema: Any) -> bool:
        """Record the scores, keep `best`, and say whether to stop early."""
        metric = scores.get(self.task.metric, -math.inf)
        improved = metric > state.best
        if improved:
            state.best, state.best_step, state.bad_validations = metric, state.step, 0
            if self.dist.is_main:
                self._save_weights("best", ema.module if ema is not None else self.model, state)
        else:
            state.bad_validations += 1
        self._log({"step": state.step, **{f"val_{k}": v for k, v in scores.items()}, "best": improved})
        return self.config.patience > 0 and state.bad_validations >= self.config.patience

    def _save_weights(self, tag: str, model: nn.Module, state: RunState) -> None:
        ckpt.save_weights(ckpt.weights_path(self.run_dir, tag), model.state_dict(), task=self.config.task,
                          arch=self.config.arch, config=self.arch_config,  # type: ignore[arg-type]
                          extra={"step": state.step, f"val_{self.task.metric}": state.best
                                 if math.isfinite(state.best) else None})
        self.folder.checkpointed()

    def _save_last(self, state: RunState, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                   ema: Any) -> None:
        if not self.dist.is_main:
            return
        self._save_weights("last", ema.module if ema is not None else model, state)
        ckpt.save_state(ckpt.state_path(self.run_dir), {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "run": {key: getattr(state, key) for key in ("step", "epoch", "batches_in_epoch", "best", "best_step",
                                                          "bad_validations", "seconds")},
            "rng": ckpt.rng_state(),
        })
        self._saved_step = state.step

    def _restore(self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, ema: Any) -> RunState:
        """Put the saved state back; a part that does not fit this run names the state file, in one line."""
        path = ckpt.state_path(self.run_dir)
        saved = self._saved if self._saved is not None else ckpt.load_state(path)
        self._saved = None
        parts: list[tuple[str, Callable[[], Any]]] = [
            (f"its model does not fit arch {self.config.arch!r} with this config",
             lambda: model.load_state_dict(saved["model"])),
            ("its optimizer state does not fit the model", lambda: optimizer.load_state_dict(saved["optimizer"])),
            ("its scheduler state is invalid", lambda: scheduler.load_state_dict(saved["scheduler"])),
            ("its gradient scaler state is invalid", lambda: scaler.load_state_dict(saved["scaler"])),
            ("its EMA weights do not fit the model",
             lambda: ema.load_state_dict(saved["ema"]) if ema is not None and saved.get("ema") is not None else None),
            ("its random number generator states are invalid", lambda: ckpt.restore_rng_state(saved["rng"])),
        ]
        for reason, restore in parts:
            try:
                restore()
            except Exception:  # each torch loader raises its own kinds (KeyError, ValueError, RuntimeError...)
                raise ckpt.damaged(path, "a vidgen training state", reason) from None
        try:
            state = RunState(**saved["run"])
            if not isinstance(state.step, int) or state.step < 0:
                raise TypeError("step")
        except TypeError:
            raise ckpt.damaged(path, "a vidgen training state", "its run counters are invalid") from None
        self._saved_step = state.step
        return state

    def _metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def _trim_metrics(self, step: int) -> None:
        """On resume, drop records an interrupted run logged after its last checkpoint (and a last line a
        killed run left half written)."""
        path = self._metrics_path()
        if not self.dist.is_main or not path.is_file():
            return
        if step == 0:
            path.unlink()
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line)
        with atomic_output(path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def _log(self, record: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        with self._metrics_path().open("a") as out:
            out.write(json.dumps(record) + "\n")
        writer = self._tensorboard_writer()
        if writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key, value, record["step"])

    def _tensorboard_writer(self) -> Any:
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                self._tensorboard = False
            else:
                # On resume, hide the events a stopped run logged after the step it resumes from.
                purge = self._resumed_from + 1 if self.resume else None
                self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge)
        return self._tensorboard or None

    def _progress(self, total: int, done: int) -> _Progress | None:
        if not (self.progress and self.dist.is_main):
            return None
        return _Progress(total, done)


class _Progress:
    """A rich progress bar on stderr showing loss and throughput."""

    def __init__(self, total: int, done: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), console=Console(stderr=True))
        self.task = self.bar.add_task("train", total=total, completed=done, info="")
        self.bar.start()

    def update(self, step: int, record: dict[str, Any]) -> None:
        info = f"loss {record['loss']:.4f}  {record['samples_per_s']:.1f} samples/s"
        self.bar.update(self.task, completed=step, info=info)

    def close(self) -> None:
        self.bar.stop()


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True,
          should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train `config` into its run folder: a new run (refusing a non-empty folder unless `overwrite`), or
    with `resume` the one there, from its last checkpoint. See `vidgen.train.run_folder` for the rules."""
    return Trainer(config, resume=resume, overwrite=overwrite, progress=progress, should_stop=should_stop).run()
