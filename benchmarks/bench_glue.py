"""GLUE dev scores of all-MiniLM-L6-v2: unmask's GLUE recipe vs a transformers Trainer run the
way run_glue runs it, with the same CPU budget per task and side, over seeds.

    .venv/bin/python benchmarks/bench_glue.py                          # 10 min, 3 seeds
    .venv/bin/python benchmarks/bench_glue.py --minutes 1 --seeds 1    # a short run

Tasks (../shared/data/glue, the glue_data/ layout): CoLA (MCC), SST-2 (accuracy), STS-B
(Pearson / Spearman, a regression on the scores), RTE (accuracy); the GLUE average of the four.

Same recipe on both sides: lr 5e-5 (the top of the common 2e-5 to 5e-5 range, as `unmask glue
--set lr=5e-5`: at 2e-5, one to two epochs leave CoLA at the majority class on both sides,
measured), batch 32, 128 tokens, AdamW 0.9 / 0.999 / 1e-8, weight
decay 0.01 (not on biases and norms), 10% warmup then linear decay over the planned steps, clip
1.0, fp32, on the CPU, at most 3 epochs (run_glue's default). Same budget: each side first times
a few steps of its own loop and plans as many training examples as it goes through in 80% of
--minutes (bench_finetune.plan), drawn in the same shuffled order; the budget also stops it.
The run_glue side: AutoModelForSequenceClassification (num_labels=1 and MSE for STS-B),
tokenizer(sentence1, sentence2, truncation=True, max_length=128), DataCollatorWithPadding,
Trainer. The unmask side: unmask.tasks.glue_run.GlueClassifyTask through finetune() (its
length-grouped batches). Both final models are scored on dev by the same code
(GlueClassifyTask.evaluate; the Trainer's model is saved in the Hugging Face layout and loaded by
unmask, whose logits equal transformers'), so the metric cannot differ by implementation.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bench_finetune import (  # the same budget planning and stopping as the other benchmark
    BATCH,
    CALIBRATION_BATCHES,
    CLIP,
    DECAY,
    WARMUP,
    _Budget,
    model_dir,
    plan,
)
from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"
TASK_NAMES = ("cola", "sst2", "stsb", "rte")
LR, MAX_LENGTH = 5e-5, 128


def load(name: str):
    """(spec, task, train, dev): the data read once by unmask's readers, given to both sides."""
    from unmask.tasks.glue import TASKS, read_split
    from unmask.tasks.glue_run import GlueClassifyTask

    spec = TASKS[name]
    task = GlueClassifyTask(model_dir(), spec, max_length=MAX_LENGTH, batch_size=BATCH,
                            batch_tokens=BATCH * MAX_LENGTH)
    train, _ = read_split(spec, GLUE, spec.train)
    dev, _ = read_split(spec, GLUE, spec.dev["dev"])
    random.Random(0).shuffle(train)  # a random subset when the budget cuts it
    return spec, task, train, dev


# --- run_glue's side -------------------------------------------------------------------------

def hf_features(spec, examples, tok) -> list[dict]:
    """run_glue's preprocessing: the pair tokenized together, truncated to 128 tokens."""
    pairs = [e.text_pair for e in examples] if examples[0].text_pair is not None else None
    enc = tok([e.text for e in examples], pairs, truncation=True, max_length=MAX_LENGTH)
    index = {n: i for i, n in enumerate(spec.labels or ())}
    labels = [float(e.label) if spec.regression else index[e.label] for e in examples]
    return [{k: enc[k][i] for k in enc} | {"labels": labels[i]} for i in range(len(examples))]


def hf_model(spec):
    import transformers as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if spec.regression:
            return tf.AutoModelForSequenceClassification.from_pretrained(
                model_dir(), num_labels=1, problem_type="regression")
        return tf.AutoModelForSequenceClassification.from_pretrained(
            model_dir(), num_labels=len(spec.labels), id2label=dict(enumerate(spec.labels)),
            label2id={n: i for i, n in enumerate(spec.labels)})


def calibrate_trainer(spec, train) -> float:
    """Trainer-side training throughput, examples per second (3 timed steps of batch 32)."""
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(model_dir())
    feats = hf_features(spec, train[:BATCH * 4], tok)
    model = hf_model(spec).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    collate = tf.DataCollatorWithPadding(tok)
    times = []
    for k in range(4):
        batch = collate(feats[k * BATCH:(k + 1) * BATCH])
        t0 = time.perf_counter()
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return BATCH / (sum(times[1:]) / 3)


def train_transformers(spec, train, epochs: float, seconds: float, seed: int, out: Path) -> dict:
    import transformers as tf

    t0 = time.perf_counter()
    tok = tf.AutoTokenizer.from_pretrained(model_dir())
    feats = hf_features(spec, train, tok)
    steps = math.ceil(-(-len(feats) // BATCH) * epochs)
    args = tf.TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=BATCH, learning_rate=LR,
        max_steps=steps, warmup_steps=round(WARMUP * steps), weight_decay=DECAY,
        max_grad_norm=CLIP, lr_scheduler_type="linear", adam_beta1=0.9, adam_beta2=0.999,
        adam_epsilon=1e-8, seed=seed, save_strategy="no", eval_strategy="no",
        logging_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0,
        disable_tqdm=True)
    budget = _Budget(seconds)
    trainer = tf.Trainer(model=hf_model(spec), args=args, train_dataset=feats,
                         data_collator=tf.DataCollatorWithPadding(tok),
                         callbacks=[budget.callback()])
    trainer.train()
    trainer.model.save_pretrained(out / "hf")
    tok.save_pretrained(out / "hf")
    return {"train_s": time.perf_counter() - t0, "steps": trainer.state.global_step,
            "stopped_by_budget": budget.hit}


# --- unmask's side ---------------------------------------------------------------------------

def settings(epochs: float | None, seconds: float, seed: int):
    from unmask.tasks import Settings

    return Settings.finetuning(lr=LR, epochs=epochs, warmup=WARMUP, weight_decay=DECAY,
                               clip=CLIP, eval_every=10**9, patience=0,
                               minutes=seconds / 60 if seconds else None, seed=seed,
                               progress=False, save_every=0, dtype="fp32", device="cpu",
                               overwrite=True)


def calibrate_unmask(task, train, out: Path) -> float:
    from unmask.tasks import finetune

    sample = train[:BATCH * CALIBRATION_BATCHES]
    for _ in range(2):  # the first run warms oneDNN's kernels up, as the Trainer's first step
        summary = finetune(task, "train", "dev", out, settings(1.0, 0, 0),
                           train_examples=sample, dev_examples=sample[:4])
    return len(sample) / summary["train_seconds"]


def train_unmask(task, train, dev, epochs: float, seconds: float, seed: int, out: Path) -> dict:
    from unmask.tasks import finetune

    t0 = time.perf_counter()
    # The loop's own end-of-run evaluation sees 8 dev rows (negligible time); the saved model
    # is scored on the whole dev set afterwards, by the same code as the Trainer's.
    summary = finetune(task, "train", "dev", out, settings(epochs, seconds, seed),
                       train_examples=train, dev_examples=dev[:8])
    return {"train_s": time.perf_counter() - t0, "steps": summary["steps"],
            "stopped_by_budget": "budget" in summary["stopped"]}


# --- the run ---------------------------------------------------------------------------------

def score(task, dev, directory: Path) -> dict:
    from unmask.checkpoints import load as load_model

    return task.evaluate(load_model(directory, task=task.model_task), dev)


def run_task(name: str, minutes: float, seeds: int, workdir: Path) -> dict:
    seconds = minutes * 60
    spec, task, train, dev = load(name)
    rates = {"transformers": calibrate_trainer(spec, train),
             "unmask": calibrate_unmask(task, train, workdir / "calibration")}
    plans = {side: plan(train, rate, seconds) for side, rate in rates.items()}
    for side, (_, epochs, n) in plans.items():
        print(f"[{name}] {side}: {rates[side]:.1f} examples/s -> {n} examples "
              f"({epochs:.2f} epochs of {len(plans[side][0])}) planned for {minutes:g} min",
              file=sys.stderr, flush=True)
    result = {"task": name, "train_set": len(train), "dev": len(dev), "runs": [],
              "plan": {side: {"examples": n, "epochs": e, "rate": rates[side]}
                       for side, (_, e, n) in plans.items()}}
    for seed in range(seeds):
        examples, epochs, _ = plans["unmask"]
        ours = train_unmask(task, examples, dev, epochs, seconds, seed, workdir / "unmask")
        ours["metrics"] = score(task, dev, workdir / "unmask" / "hf")
        examples, epochs, _ = plans["transformers"]
        theirs = train_transformers(spec, examples, epochs, seconds, seed,
                                    workdir / "transformers")
        theirs["metrics"] = score(task, dev, workdir / "transformers" / "hf")
        result["runs"].append({"seed": seed, "unmask": ours, "transformers": theirs})
        print(json.dumps(result["runs"][-1], default=str), file=sys.stderr, flush=True)
    return result


def _ms(values: list[float]) -> str:
    values = [100 * v for v in values]
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.1f}±{std:.1f}"


def table(results: list[dict], minutes: float) -> str:
    from unmask.tasks.glue import TASKS

    lines = [("| task | metric | unmask | Trainer (run_glue) | unmask examples (epochs) | "
              "Trainer examples (epochs) | unmask train s | Trainer train s |"),
             "|---|---|---|---|---|---|---|---|"]
    averages: dict[str, list[float]] = {"unmask": [], "transformers": []}
    for r in results:
        spec = TASKS[r["task"]]
        for k, metric in enumerate(spec.metrics):
            cells = {side: _ms([run[side]["metrics"][metric] for run in r["runs"]])
                     for side in averages}
            plans = {side: f"{r['plan'][side]['examples']} ({r['plan'][side]['epochs']:.2f})"
                     for side in averages}
            secs = {side: f"{sum(run[side]['train_s'] for run in r['runs']) / len(r['runs']):.0f}"
                    for side in averages}
            lines.append(f"| {spec.title} | {metric} | {cells['unmask']} | "
                         f"{cells['transformers']} | " + (
                             f"{plans['unmask']} | {plans['transformers']} | {secs['unmask']} | "
                             f"{secs['transformers']} |" if k == 0 else "| | | |"))
        for side, per_task in averages.items():
            per_task.append([run[side]["metrics"]["score"] for run in r["runs"]])
    seeds = min(len(r["runs"]) for r in results)
    avg = {side: _ms([sum(task[s] for task in per) / len(per) for s in range(seeds)])
           for side, per in averages.items()}
    lines.append(f"| average ({len(results)} tasks) | GLUE score | {avg['unmask']} | "
                 f"{avg['transformers']} | | | | |")
    return "\n".join(lines) + (f"\n\nbudget: {minutes:g} min of training per task per side; "
                               f"dev scores x100, mean±std over {seeds} seed(s); train s: "
                               "tokenization, model load, training and saving, per seed")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="training budget per task/side")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    p.add_argument("--tasks", default=",".join(TASK_NAMES), help="comma-separated: "
                   + ",".join(TASK_NAMES))
    p.add_argument("--json", help="also write the raw results here")
    args = p.parse_args()
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(names) - set(TASK_NAMES)
    if unknown:
        p.error(f"unknown task(s) {sorted(unknown)}; choose from {list(TASK_NAMES)}")
    if not GLUE.is_dir():
        p.error(f"{GLUE} is missing (the shared GLUE data)")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(run_task(name, args.minutes, args.seeds, Path(tmp) / name))
            if args.json:  # after every task: a long run that dies keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(f"{table(results, args.minutes)}\n{describe()}")


if __name__ == "__main__":
    main()
