"""Run GLUE: fine-tune every task (per seed), score the dev sets, predict the test sets, and
build the table of published GLUE rows and the GLUE server's submission.zip.

    from unmask.tasks.glue_run import run_glue
    result = run_glue("path/to/model", "glue_data", "runs/glue", tasks=["cola", "rte"], seeds=3)
    print(result["table"])

Each task and seed trains with unmask.tasks.finetune (the one public entry of the loop) in
OUT/<task>/seed<k>/; its metrics.json, written atomically once its test predictions are on
disk, marks it done, so a run that was interrupted picks up at the first unfinished task.
The model directories are removed afterwards unless keep_models (a BERT-base is ~0.9 GB per
task and seed). The submission takes each task's best seed on dev.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from unmask.checkpoints import load
from unmask.tasks import ClassifyTask, Settings, finetune
from unmask.tasks.glue import (
    AX,
    SUBMISSION_FILES,
    TASKS,
    GlueTask,
    columns,
    find_tasks,
    format_predictions,
    header_of,
    read_split,
    split_exists,
    task_metrics,
    task_score,
    write_zip,
)

# The common GLUE recipe (BERT, run_glue): peak lr 2e-5, batch 32, 3 epochs, 10% warmup then
# linear decay, 128 tokens; the rest is Settings.finetuning() (AdamW 0.9 / 0.999 / 1e-8, weight
# decay 0.01, clip 1.0, an evaluation per epoch, early stop after 2 without gain).
# `--set task.key=value` (or key=value for every task) overrides any of it.
RECIPE: dict[str, Any] = {"lr": 2e-5, "epochs": 3.0, "warmup": 0.1, "batch_size": 32,
                          "batch_tokens": 8192, "max_length": 128}
TASK_KEYS = ("batch_size", "batch_tokens", "max_length")  # the Task's, not the Settings'
_KINDS = {"int": int, "float": float, "str": str, "bool": bool}
SETTABLE = {f.name: _KINDS[str(f.type).split(" ")[0]] for f in fields(Settings)
            if str(f.type).split(" ")[0] in _KINDS and f.name not in (
                "out", "seed", "progress", "resume", "overwrite", "device")}
SETTABLE |= {key: int for key in TASK_KEYS}
SAFETY = 0.9  # a time budget plans the schedule for this share of it (speed varies)
CALIBRATION_BATCHES = 5


class GlueClassifyTask(ClassifyTask):
    """ClassifyTask with the GLUE task's fixed label set (the order of the hub's label ids) and
    its metrics; the headline `score` (the mean of the task's metrics on one dev split, as the
    leaderboard counts it) picks the best checkpoint."""

    def __init__(self, model_path, spec: GlueTask, **kwargs: Any):
        super().__init__(model_path, regression=spec.regression, **kwargs)
        self.spec = spec
        self.name = f"glue-{spec.name}"
        self.labels = list(spec.labels or ())

    @property
    def metric(self) -> str:
        return "score"

    def fit_labels(self, examples, path) -> None:
        self.check_labels(examples, path)

    def evaluate(self, model, examples) -> dict[str, Any]:
        metrics = task_metrics(self.spec, [e.label for e in examples],
                               self.predict(model, examples))
        score = sum(metrics[m] for m in self.spec.metrics) / len(self.spec.metrics)
        return {"metric": score, "score": score, **metrics, "examples": len(examples)}


def parse_overrides(text: str, names: Sequence[str] = tuple(TASKS)) -> dict[str, dict]:
    """`rte.lr=3e-5,cola.epochs=5,batch_size=16` -> {"rte": {"lr": 3e-5}, "cola": {...}, ...};
    a key without a task applies to every task (a task's own setting wins)."""
    every: dict[str, Any] = {}
    per: dict[str, dict[str, Any]] = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        key, eq, value = item.partition("=")
        task, dot, key = key.strip().rpartition(".")
        if not eq or not key:
            raise ValueError(f"--set {item!r}: write task.key=value (e.g. rte.lr=3e-5)")
        if dot and task not in names:
            raise ValueError(f"--set {item!r}: unknown task {task!r}; tasks: {', '.join(names)}")
        if key not in SETTABLE:
            raise ValueError(f"--set {item!r}: unknown setting {key!r}; settable: "
                             f"{', '.join(sorted(SETTABLE))}")
        kind = SETTABLE[key]
        try:
            parsed = (value.strip().lower() in ("1", "true", "yes")) if kind is bool else \
                kind(float(value) if kind is int else value)
        except ValueError:
            raise ValueError(f"--set {item!r}: {value!r} is not a {kind.__name__}") from None
        (per.setdefault(task, {}) if dot else every)[key] = parsed
    return {name: {**every, **per.get(name, {})} for name in names}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # a reader sees the old file or the whole new one, never half


def _plan(task, train, dev, settings: Settings, minutes: float, workdir: Path
          ) -> tuple[Settings, str]:
    """Fit the schedule to a time budget. Two short timed runs (1 and CALIBRATION_BATCHES
    batches: their difference cancels what every run pays once, the first step, the save)
    give the speed; when the recipe's epochs fit in SAFETY of the budget they stay (the budget
    only caps), else the schedule decays over the budget (the engine projects the total from
    its pace). Returns (settings, the plan in words)."""
    probe = replace(settings, epochs=1.0, minutes=None, steps=None, patience=0,
                    progress=False, save_every=0)
    sizes = sorted({min(len(train), task.batch_size * n) for n in (1, CALIBRATION_BATCHES)})
    seconds = []
    for n in sizes:
        summary = finetune(task, "train (timing)", "dev", workdir, probe,
                           train_examples=train[:n], dev_examples=dev[:8])
        seconds.append(summary["train_seconds"])
        shutil.rmtree(workdir, ignore_errors=True)
    if len(sizes) == 2 and seconds[1] > seconds[0]:
        rate = (sizes[1] - sizes[0]) / (seconds[1] - seconds[0])
    else:  # a training set of one batch, or timings lost in noise: the slower estimate
        rate = sizes[-1] / max(seconds[-1], 1e-3)
    if settings.epochs and rate * minutes * 60 * SAFETY >= settings.epochs * len(train):
        return replace(settings, minutes=minutes), (
            f"{rate:.0f} examples/s: {settings.epochs:g} epochs fit in {minutes:g} min")
    return replace(settings, minutes=minutes, epochs=None, steps=None), (
        f"{rate:.0f} examples/s: {minutes:g} min, about "
        f"{rate * minutes * 60 / len(train):.2f} epochs")


def run_task(model: str | Path, data: Path, spec: GlueTask, seed: int, out: Path,
             settings: dict[str, Any], minutes: float = 0.0, max_train: int = 0,
             device: str = "auto", progress: bool = True, keep_models: bool = False,
             log: Callable[[str], None] = print, allow_pickle: bool = False) -> dict[str, Any]:
    """Fine-tune one task with one seed in `out`, score its dev splits, write its test
    predictions (out/predictions/<file>.tsv) and out/metrics.json. Returns that record;
    when out/metrics.json exists already, returns it without training."""
    done = out / "metrics.json"
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8"))
    train, _ = read_split(spec, data, spec.train)
    devs = {key: read_split(spec, data, split)[0] for key, split in spec.dev.items()}
    tests = {stem: split for stem, split in spec.test.items() if split_exists(data, split)}
    if spec.name == "mnli" and split_exists(data, AX):
        tests["AX"] = AX
    random.Random(0).shuffle(train)  # one subset for every seed when a cap or budget cuts it
    if max_train:
        train = train[:max_train]
    recipe = {**RECIPE, **settings}
    task = GlueClassifyTask(model, spec, allow_pickle=allow_pickle,
                            **{k: recipe.pop(k) for k in TASK_KEYS})
    run = Settings.finetuning(**recipe, out=str(out), seed=seed, progress=progress,
                              device=device, save_every=0, overwrite=True)
    first = next(iter(devs.values()))
    planned = f"{run.epochs:g} epochs" if run.epochs else f"{run.minutes:g} min"
    if minutes and "minutes" not in settings:
        run, planned = _plan(task, train, first, run, minutes, out / "timing")
    log(f"{spec.title} seed {seed}: {len(train)} training examples, dev "
        f"{'/'.join(str(len(d)) for d in devs.values())}, lr {run.lr:g}, {planned}")
    summary = finetune(task, data / spec.train.tsv, data / next(iter(spec.dev.values())).tsv,
                       out, run, train_examples=train, dev_examples=first)
    (out / "predictions").mkdir(exist_ok=True)
    if summary["best"] is None:  # no finite dev score: the loop saved no model
        log(f"{spec.title} seed {seed}: no evaluation gave a finite dev score; no predictions")
        dev = {key: dict.fromkeys(spec.metrics, math.nan) for key in devs}
        tests = {}
    else:
        # Every dev split is scored by the saved model (hf/, which every version writes), the
        # one that predicts the test sets.
        best = load(out / "hf", task=task.model_task).to(task.device)
        dev = {key: task_metrics(spec, [e.label for e in rows], task.predict(best, rows))
               for key, rows in devs.items()}
    for stem, split in tests.items():
        rows, ids = read_split(spec, data, split, test=True)
        _write_atomic(out / "predictions" / f"{stem}.tsv",
                      format_predictions(spec, ids, task.predict(best, rows)))
    record = {"task": spec.name, "seed": seed, "dev": dev, "score": task_score(spec, dev),
              "predictions": sorted(tests), "steps": summary["steps"],
              "stopped": summary["stopped"], "best_step": (summary["best"] or {}).get("step"),
              "train_examples": len(train), "train_seconds": summary["train_seconds"],
              "settings": run.to_dict(), "recipe": {**RECIPE, **settings},
              "model": str(model)}
    if not keep_models:
        for name in ("model", "unmask", "hf", "checkpoints"):
            shutil.rmtree(out / name, ignore_errors=True)
    _write_atomic(done, json.dumps(record, indent=2) + "\n")
    return record


def run_glue(model: str | Path, data: str | Path, out: str | Path,
             tasks: Sequence[str] | None = None, seeds: int = 1, minutes_per_task: float = 0.0,
             settings: dict[str, dict] | None = None, max_train: int = 0, device: str = "auto",
             progress: bool = True, keep_models: bool = False, name: str | None = None,
             log: Callable[[str], None] | None = None, allow_pickle: bool = False
             ) -> dict[str, Any]:
    """Every task of `tasks` (default: all found in `data`) for seeds 0..seeds-1, then the
    table (OUT/glue.md), all records (OUT/glue.json) and OUT/submission/ + submission.zip.

    allow_pickle: permit a model with only pytorch_model.bin (read as tensors only).
    settings: per-task overrides of RECIPE (parse_overrides). name: the table's model column
    (default: model_name(model)). Returns {"records": {task: [per-seed record]}, "table":
    markdown, "submission": [files], "missing": [files]}.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    data, out = Path(data), Path(out)
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data} is not a folder (the glue_data/ folder or the "
                                "hub's glue folder)")
    found = find_tasks(data)
    if tasks is None:
        for key, why in found.items():
            if why:
                log(f"{TASKS[key].title}: skipped ({why})")
        tasks = [key for key, why in found.items() if not why]
    for key in tasks:
        if key not in TASKS:
            raise ValueError(f"unknown GLUE task {key!r}; tasks: {', '.join(TASKS)} (AX comes "
                             "with mnli)")
        if found.get(key, "missing") != "":
            raise FileNotFoundError(f"{TASKS[key].title}: {found.get(key) or 'no files'} in "
                                    f"{data}")
    if not tasks:
        raise FileNotFoundError(f"no GLUE task with train and dev files in {data}")
    settings = settings or {}
    records: dict[str, list[dict]] = {}
    jobs = [(key, seed) for key in tasks for seed in range(seeds)]
    for k, (key, seed) in enumerate(jobs, start=1):
        spec, directory = TASKS[key], out / key / f"seed{seed}"
        directory.mkdir(parents=True, exist_ok=True)
        earlier = ": done earlier, kept" if (directory / "metrics.json").is_file() else ""
        log(f"[{k}/{len(jobs)}] {spec.title} seed {seed}{earlier}")
        record = run_task(model, data, spec, seed, directory, settings.get(key, {}),
                          minutes_per_task, max_train, device, progress, keep_models, log,
                          allow_pickle)
        records.setdefault(key, []).append(record)
        log(f"[{k}/{len(jobs)}] {spec.title} seed {seed}: dev {_cell(spec, [record])} "
            f"(score {100 * record['score']:.1f})")
    table = glue_table({name or model_name(model): records})
    files, missing = write_submission(records, out)
    _write_atomic(out / "glue.json", json.dumps({"model": str(model), "records": records},
                                                indent=2) + "\n")
    _write_atomic(out / "glue.md", table + "\n")
    return {"records": records, "table": table, "submission": files, "missing": missing}


# --- the table -------------------------------------------------------------------------------

def model_name(model: str | Path) -> str:
    """A short name for the table: the folder's, or its parent's for model/ hf/ unmask/."""
    path = Path(str(model))
    return path.parent.name if path.name in ("model", "hf", "unmask") and path.parent.name \
        else path.name


def _number(values: Sequence[float]) -> str:
    """The values x100 as `mean±std` (the sample std over seeds), or `mean` for one value."""
    pct = [100 * v for v in values]
    mean = sum(pct) / len(pct)
    if len(pct) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f}±{math.sqrt(sum((v - mean) ** 2 for v in pct) / (len(pct) - 1)):.1f}"


def _cell(spec: GlueTask, records: Sequence[dict]) -> str:
    return "/".join(_number([r["dev"][key][metric] for r in records])
                    for key, metric in columns(spec))


def glue_average(records: dict[str, list[dict]], seed_index: int) -> float:
    """The GLUE average of one seed: the mean of the task scores (a task with two numbers
    counts their mean, MNLI its m / mm mean), as the leaderboard computes it."""
    scores = [rs[seed_index]["score"] for rs in records.values()]
    return sum(scores) / len(scores)


def glue_table(rows: dict[str, dict[str, list[dict]]]) -> str:
    """Markdown in the layout of published GLUE rows (dev scores x100, mean±std over seeds):
    one row per model; columns in GLUE's order, only the tasks that were run."""
    names = [n for n in TASKS if any(n in records for records in rows.values())]
    lines = ["| Model | " + " | ".join(header_of(TASKS[n]) for n in names) + " | Avg |",
             "|---" * (len(names) + 2) + "|"]
    for model, records in rows.items():
        cells = [_cell(TASKS[n], records[n]) if n in records else "-" for n in names]
        seeds = min(len(rs) for rs in records.values())
        avg = _number([glue_average(records, s) for s in range(seeds)])
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {avg} |")
    return "\n".join(lines)


# --- the submission --------------------------------------------------------------------------

def write_submission(records: dict[str, list[dict]], out: Path) -> tuple[list[str], list[str]]:
    """Copy each task's best seed's predictions to out/submission/ and zip them into
    out/submission.zip. Returns (files written, GLUE files missing for a full submission)."""
    folder = out / "submission"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.tsv"):  # from an earlier run over other tasks
        stale.unlink()
    for name, rs in records.items():
        best = max(rs, key=lambda r: -math.inf if math.isnan(r["score"]) else r["score"])
        for stem in best["predictions"]:
            shutil.copy(out / name / f"seed{best['seed']}" / "predictions" / f"{stem}.tsv",
                        folder / f"{stem}.tsv")
    files = write_zip(folder, out / "submission.zip")
    missing = [f"{stem}.tsv" for stem in SUBMISSION_FILES if f"{stem}.tsv" not in files]
    return files, missing


__all__ = ["RECIPE", "GlueClassifyTask", "glue_average", "glue_table", "parse_overrides",
           "run_glue", "run_task", "write_submission"]
