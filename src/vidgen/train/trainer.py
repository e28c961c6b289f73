"""The one trainer: any registered arch of any task in `vidgen.train.tasks`, on folders of videos.

AdamW with linear warmup and cosine decay (over the steps, or over a wall-time budget), gradient
accumulation and clipping, AMP on CUDA (bf16, or fp16 with a gradient scaler), optional torch.compile
and EMA of the weights, early stopping on the validation metric, seeded and resumable to the exact
sample. Under torchrun the same code runs DistributedDataParallel; rank 0 alone writes the run folder
(layout in `vidgen.train.checkpoint`; who may use it, its lock and what a failed run leaves in
`vidgen.train.run_folder`).

This module is the loop and the order of a run; the parts it drives live beside it: `run_data` (split
and datasets), `build` (model, trainable parameters, optimizer, EMA), `schedule` (length and learning
rate), `amp`, `batches` (DataLoader, `to_device`), `validation`, `run_state` (seeding, resume state) and
`reporting` (metrics.jsonl, TensorBoard, progress bar).

Tasks shape the data through two optional hooks (the others get `FrameWindows` of video frames):
`task.make_dataset(videos, train=, config=, cache_dir=, device=, frame_windows=)` may return the task's
own Dataset, whose samples may be tensors or tuples/dicts of them (batched by `default_collate`, moved by `to_device`), and
`task.model_config()` returns arch config keys the task fixed from that data (vocabulary size, grid),
merged into the model's config after the datasets are made.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidgen.errors import VidgenError
from vidgen.files import atomic_output
from vidgen.train import checkpoint as ckpt
from vidgen.train.amp import amp_dtype, autocast, grad_scaler
from vidgen.train.batches import epoch_loader, to_device
from vidgen.train.build import arch_spec, build_model, make_ema, make_optimizer, trainable_parameters, training_forward
from vidgen.train.config import TrainConfig, write_config
from vidgen.train.distributed import DistContext, ResumableSampler, init_distributed, shutdown
from vidgen.train.reporting import MetricsLog, ProgressBar
from vidgen.train.run_data import run_datasets, run_split
from vidgen.train.run_folder import RunFolder
from vidgen.train.run_state import RunState, restore_training_state, seed_everything, training_state
from vidgen.train.schedule import BudgetClock, lr_schedule, run_length
from vidgen.train.tasks import TrainTask
from vidgen.train.validation import validate, validation_picks

__all__ = ["TrainResult", "Trainer", "train"]

log = logging.getLogger("vidgen.train")


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    best: float
    best_step: int
    baseline: float | None
    stopped_early: bool
    metric: str = "psnr"


class Trainer:
    def __init__(self, config: TrainConfig, task: TrainTask, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True, should_stop: Callable[[int], bool] | None = None) -> None:
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
        self.task = task
        device = resolve_device(config.device)
        self.dist: DistContext = init_distributed(device)
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.run_dir = Path(config.out)  # type: ignore[arg-type]
        self.amp_dtype = amp_dtype(config.amp, device)
        self.metrics = MetricsLog(self.run_dir, enabled=self.dist.is_main)

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
                self.metrics.close()
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

    # --- the run ---------------------------------------------------------------------------------

    def _run(self) -> TrainResult:
        from vidgen.train.losses import build_loss

        config, dist = self.config, self.dist
        seed_everything(config.seed, config.deterministic)
        split = run_split(config, self.run_dir, self.resume)
        spec = arch_spec(config)
        if dist.is_main:
            self.folder.begin_writing()
            write_config(config, self.run_dir / "config.toml")
            with atomic_output(self.run_dir / "split.json") as tmp:
                tmp.write_text(json.dumps(split.to_json(), indent=1) + "\n", encoding="utf-8")
        train_set, val_set = run_datasets(split, task=self.task, config=config, run_dir=self.run_dir,
                                          device=self.device, dist=dist)
        val_picks = validation_picks(len(val_set), config.val_windows)
        model, arch_config = build_model(spec, config, self.task)
        self.arch_config = arch_config
        loss_fn = build_loss(config.loss)

        model.to(self.device)
        self.model = model
        trainable = trainable_parameters(model, config.train_only)  # before DDP, which registers what requires gradients
        forward = training_forward(self.task, model, dist, self.device, config.compile)
        optimizer = make_optimizer(trainable, config)
        sampler = ResumableSampler(len(train_set), dist, seed=config.seed)
        length = run_length(config, len(train_set), len(sampler), dist.world_size)
        total, budget = length.total, length.budget
        clock = BudgetClock()
        scheduler = lr_schedule(optimizer, length, clock)
        scaler = grad_scaler(self.device, self.amp_dtype)
        ema = make_ema(model, config.ema)
        state = RunState()
        if self.resume:
            state = self._restore(model, optimizer, scheduler, scaler, ema)
        if budget is not None:
            clock.fraction = state.seconds / budget
        self.metrics.start(state.step, resumed=self.resume)

        baseline = None
        stopped_early = False
        samples_per_step = config.batch_size * config.accumulate * dist.world_size
        window_loss: list[float] = []
        window_start = time.perf_counter()
        progress = (self._progress(total, state.step) if total is not None
                    else self._progress(round(budget), round(state.seconds)))  # type: ignore[arg-type]
        seconds_before, loop_start = state.seconds, time.perf_counter()

        def finished() -> bool:
            return state.step >= total if total is not None else clock.fraction >= 1.0

        model.train()
        try:
            while not finished() and not stopped_early:
                sampler.set_epoch(state.epoch, skip=state.batches_in_epoch * config.batch_size)
                train_set.set_epoch(state.epoch)
                loader = epoch_loader(train_set, sampler, batch_size=config.batch_size, workers=config.workers,
                                      seed=config.seed, epoch=state.epoch, device=self.device)
                micro = 0
                for batch in loader:
                    batch = to_device(batch, self.device)
                    micro += 1
                    sync = micro % config.accumulate == 0
                    with self._no_sync(forward, sync), autocast(self.device, self.amp_dtype):
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
                        clock.fraction = float(dist.all_reduce_sum(torch.tensor(
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
                        self.metrics.write(record)
                        if progress is not None:
                            progress.update(state.step if total is not None else round(state.seconds), record)
                        window_loss, window_start = [], time.perf_counter()
                    if state.step % config.val_every == 0 or final:
                        scores = validate(ema.module if ema is not None else model, val_set, val_picks,
                                          task=self.task, batch_size=config.batch_size, device=self.device,
                                          amp_dtype=self.amp_dtype, dist=dist)
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

    # --- after validation, checkpoints -----------------------------------------------------------

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
        self.metrics.write({"step": state.step, **{f"val_{k}": v for k, v in scores.items()}, "best": improved})
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
        ckpt.save_state(ckpt.state_path(self.run_dir), training_state(state, model, optimizer, scheduler, scaler, ema))
        self._saved_step = state.step

    def _restore(self, model: nn.Module, optimizer: Any, scheduler: Any, scaler: Any, ema: Any) -> RunState:
        """Put the saved state back; a part that does not fit this run names the state file, in one line."""
        path = ckpt.state_path(self.run_dir)
        saved = self._saved if self._saved is not None else ckpt.load_state(path)
        self._saved = None
        state = restore_training_state(saved, path, self.config.arch, model, optimizer,  # type: ignore[arg-type]
                                       scheduler, scaler, ema)
        self._saved_step = state.step
        return state

    def _progress(self, total: int, done: int) -> ProgressBar | None:
        if not (self.progress and self.dist.is_main):
            return None
        return ProgressBar(total, done)


def train(config: TrainConfig, task: TrainTask, *, resume: bool = False, overwrite: bool = False,
          progress: bool = True, should_stop: Callable[[int], bool] | None = None) -> TrainResult:
    """Train `config` for `task` (what the model sees and how it is scored: a task package's training task,
    `vidgen.tasks.training_task`) into its run folder: a new run (refusing a non-empty folder unless
    `overwrite`), or with `resume` the one there, from its last checkpoint (`vidgen.train.run_folder`)."""
    return Trainer(config, task, resume=resume, overwrite=overwrite, progress=progress, should_stop=should_stop).run()
