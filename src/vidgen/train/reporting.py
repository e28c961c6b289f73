"""What a run reports: `metrics.jsonl`, TensorBoard scalars and a progress bar, all from rank 0 only.

`metrics.jsonl` holds one JSON object per line: a training record every `--log-every` steps (`step`,
`epoch`, `loss`, `loss_<term>`, `lr`, `samples_per_s`, `seconds`) and a validation record (`step`,
`val_<score>`, `best`: whether it improved). Every numeric field but `step` (booleans excepted) also goes
to TensorBoard under `RUN_DIR/tensorboard` when the optional tensorboard extra is installed. On resume
from step S, records after S are dropped (and a half-written last line), and TensorBoard purges events
after S; a new run starts the file afresh.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidgen.files import atomic_output


class MetricsLog:
    """A run's `metrics.jsonl` and TensorBoard events; does nothing on ranks other than 0 (`enabled=False`)."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "metrics.jsonl"
        self.enabled = enabled
        self._purge_step: int | None = None
        self._tensorboard: Any = None

    def start(self, step: int, resumed: bool) -> None:
        """Continue from `step`: drop records an interrupted run logged after its last checkpoint (and a last
        line a killed run left half written); with `resumed`, TensorBoard hides events after `step` too."""
        self._purge_step = step + 1 if resumed else None
        if not self.enabled or not self.path.is_file():
            return
        if step == 0:
            self.path.unlink()
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line)
        with atomic_output(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` (which has an int `step`) to the file and its numbers to TensorBoard."""
        if not self.enabled:
            return
        with self.path.open("a") as out:
            out.write(json.dumps(record) + "\n")
        writer = self._tensorboard_writer()
        if writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    writer.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tensorboard:
            self._tensorboard.close()

    def _tensorboard_writer(self) -> Any:
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self._purge_step)
        return self._tensorboard or None


class ProgressBar:
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
