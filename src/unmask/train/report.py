"""What a run reports: JSON lines, a loss-curve picture, a progress bar, a unigram baseline.

metrics.jsonl holds one JSON object per line: {"kind": "train", "step", "loss", "lr",
"tokens_per_s", ...} every log interval and {"kind": "eval", "step", "loss", "accuracy",
"perplexity", ...} after each evaluation, so `pandas.read_json(path, lines=True)` reads it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


class MetricsLog:
    """Append-only JSON lines. On resume, lines past the checkpoint's step are dropped
    (they came from the part of the killed run that is being redone)."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.is_file():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        lines = self.path.read_text().splitlines() if self.path.is_file() else []
        return [json.loads(line) for line in lines if line.strip()]


def save_loss_curve(records: list[dict], path: str | Path, title: str = "") -> Path:
    """PNG of training loss (and validation loss, when evaluations report one) against step.

    records: MetricsLog records; an eval record's "unigram_baseline" is drawn as a
    horizontal reference line.
    """
    from matplotlib.figure import Figure  # savefig renders the PNG with Agg itself

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    for kind, style in (("train", "-"), ("eval", "o-")):
        rows = [r for r in records if r["kind"] == kind and r.get("loss") is not None]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style,
                    label="validation" if kind == "eval" else "training", markersize=3)
    baseline = next((r["unigram_baseline"] for r in records if r.get("unigram_baseline")),
                    None)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="grey", label="unigram baseline")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(str(path))
    return Path(path)


def unigram_entropy(train_counts: np.ndarray, eval_counts: np.ndarray) -> float:
    """Cross-entropy (nats) of predicting eval tokens from train unigram frequencies.

    The loss a model reaches by ignoring context. train_counts, eval_counts: int (V,)
    token counts (add-one smoothing keeps unseen tokens finite).
    """
    p = (train_counts + 1.0) / (train_counts.sum() + len(train_counts))
    q = eval_counts / max(eval_counts.sum(), 1)
    return float(-(q * np.log(p)).sum())


class Progress:
    """A progress bar with loss, tokens/s and ETA (rich, on a terminal), or nothing when
    disabled; note() prints a line above it (or to stderr without a terminal)."""

    def __init__(self, total: int | None, enabled: bool, minutes: float | None = None):
        self.enabled = enabled
        self.start = time.perf_counter()
        self.minutes = minutes
        self._bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("step {task.completed}"), BarColumn(),
                                 TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self._task = self._bar.add_task("train", total=total, info="")
            self._bar.start()

    def update(self, step: int, loss: float, tokens_per_s: float, total: int | None) -> None:
        if self._bar is None:
            return
        info = f"loss {loss:.3f}  {tokens_per_s:,.0f} tok/s"
        if self.minutes:
            left = max(0.0, self.minutes * 60 - (time.perf_counter() - self.start))
            info += f"  {left / 60:.1f} min left"
        self._bar.update(self._task, completed=step, total=total, info=info)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text)
        elif self.enabled:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


__all__ = ["MetricsLog", "Progress", "save_loss_curve", "unigram_entropy"]
