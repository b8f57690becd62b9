"""The training engine (with the pretraining recipe): exact resume, atomic checkpoints, clear
errors, the run-folder rule, non-finite losses, early stopping, learning on real text."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unmask.data import write_token_shards
from unmask.train import resume as ckpt
from unmask.train.loop import EarlyStopping, Trainer, TrainingDiverged
from unmask.train.pretrain import PretrainRecipe, pretrainer
from unmask.train.resume import latest_checkpoint
from unmask.train.settings import Settings

PRETRAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "pretrain_text"
SPECIALS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


def synthetic_shards(directory: Path, vocab: int = 64, docs: int = 40, seed: int = 0) -> Path:
    """Documents with a learnable pattern (token i+1 follows token i), lengths 5..60."""
    rng = np.random.default_rng(seed)

    def doc():
        start = int(rng.integers(5, vocab))
        return [5 + (start + k) % (vocab - 5) for k in range(int(rng.integers(5, 60)))]

    write_token_shards(directory, {"train": [doc() for _ in range(docs)],
                                   "validation": [doc() for _ in range(6)]},
                       vocab_size=vocab, special_ids=SPECIALS)
    return directory


RECIPE = {f.name for f in dataclasses.fields(PretrainRecipe)}


def tiny_config(data: Path, out: Path, **overrides) -> tuple[PretrainRecipe, Settings]:
    """(recipe, settings) of a tiny run; overrides go to whichever of the two has the field."""
    merged = {"data": str(data), "out": str(out), "preset": "tiny", "seq_len": 32,
              "batch_size": 4, "steps": 6, "lr": 1e-3, "warmup": 2, "eval_every": 3,
              "eval_batches": 2, "save_every": 3, "log_every": 1, "device": "cpu",
              "dtype": "fp32", "progress": False, **overrides}
    return (PretrainRecipe(**{k: v for k, v in merged.items() if k in RECIPE}),
            Settings(**{k: v for k, v in merged.items() if k not in RECIPE}))


def tiny(data: Path, out: Path, **overrides) -> Trainer:
    return pretrainer(*tiny_config(data, out, **overrides))


def losses(run: Path) -> dict[int, float]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines) if r["kind"] == "train"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return synthetic_shards(tmp_path_factory.mktemp("shards"))


@pytest.mark.parametrize("objective", ["mlm", "electra"])
def test_resume_reproduces_the_uninterrupted_losses(shards, tmp_path, objective):
    # dropout on: the RNG state must be restored too, not only weights and optimizer
    def config(out, **more):
        return tiny_config(shards, out, objective=objective, dropout=0.1, steps=4,
                           save_every=2, eval_every=2, **more)

    full, cut = tmp_path / "full", tmp_path / "cut"
    pretrainer(*config(full)).run()
    pretrainer(*config(cut)).run(stop_at=2)
    assert max(losses(cut)) == 2
    pretrainer(*config(cut, resume=True)).run()
    expected, got = losses(full), losses(cut)
    assert sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    final_full = (full / "model" / "model.safetensors").read_bytes()
    assert final_full == (cut / "model" / "model.safetensors").read_bytes()


def test_a_crash_while_writing_a_checkpoint_leaves_the_last_one_intact(shards, tmp_path,
                                                                      monkeypatch):
    run = tmp_path / "run"
    trainer = tiny(shards, run, steps=6)
    trainer.run(stop_at=3)
    assert latest_checkpoint(run).name == "step-00000003"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    resumed = tiny(shards, run, steps=6, resume=True)
    monkeypatch.setattr(ckpt, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        resumed.run()
    monkeypatch.undo()
    assert latest_checkpoint(run).name == "step-00000003"  # the half-written one is ignored
    again = tiny(shards, run, steps=6, resume=True)
    assert again.step == 3
    again.run()
    assert latest_checkpoint(run).name == "step-00000006"
    assert not list((run / "checkpoints").glob("*.tmp*"))


def test_resume_errors_name_the_problem(shards, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        tiny(shards, tmp_path / "empty", resume=True)
    run = tmp_path / "run"
    tiny(shards, run).run(stop_at=3)
    with pytest.raises(ValueError, match="mask_rate"):
        tiny(shards, run, mask_rate=0.15, resume=True)


def test_outputs_both_layouts_metrics_and_curve(shards, tmp_path):
    run = tmp_path / "run"
    result = tiny(shards, run, steps=3, objective="causal").run()
    assert (run / "model" / "unmask.json").is_file()
    assert json.loads((run / "hf" / "config.json").read_text())["model_type"] == "bert"
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert {"loss", "accuracy", "perplexity"} <= set(result["eval"])
    kinds = {json.loads(line)["kind"] for line in (run / "metrics.jsonl").read_text().splitlines()}
    assert kinds == {"train", "eval"}


@pytest.mark.skipif(not PRETRAIN.is_dir(), reason="needs ../shared/data/pretrain_text")
def test_pretraining_on_real_text_beats_the_unigram_baseline(tmp_path):
    from unmask.commands.pretrain import prepare_corpus

    data = tmp_path / "data"
    prepare_corpus(PRETRAIN / "inaugural", data, vocab_size=1000, validation=4, quiet=True)
    trainer = tiny(data, tmp_path / "run", seq_len=64, batch_size=16, steps=300, lr=2e-3,
                   warmup=20, dropout=0.0, eval_every=300, eval_batches=4, save_every=0,
                   log_every=50)
    start, baseline = trainer.evaluate()["loss"], trainer.evaluator.baseline
    result = trainer.run()
    assert start > baseline  # an untrained model is worse than unigram counts
    assert result["eval"]["loss"] < baseline - 0.15  # 300 steps: 5.70 vs 5.96


def test_evaluation_skips_an_empty_share_of_the_validation_split(shards, tmp_path):
    """Under torchrun a small validation split can leave a rank with an empty batch."""
    trainer = tiny(shards, tmp_path / "run")
    full = trainer.evaluate()
    empty = {k: v[:0] for k, v in trainer.evaluator.inputs[0].items()}
    trainer.evaluator.inputs.append(empty)
    assert trainer.evaluate() == full


@pytest.mark.parametrize("objective", ["mlm", "electra", "causal"])
def test_an_all_padding_batch_gives_zero_loss_and_a_gradient_for_every_parameter(
        shards, tmp_path, objective):
    """Under torchrun the last batch of an epoch can leave a rank with only empty rows; it
    must still take part in the gradient all-reduce (every parameter gets a gradient)."""
    trainer = tiny(shards, tmp_path / "run", objective=objective)
    batch = next(trainer.iterator)
    batch.update(attention_mask=batch["attention_mask"] & False,
                 document_ids=batch["document_ids"] * 0 - 1,
                 special_tokens_mask=batch["special_tokens_mask"] | True)
    inputs, counts = trainer.objective.prepare(batch)
    assert inputs["input_ids"].shape[0] == 0 and float(counts.sum()) == 0
    terms, stats = trainer.module(**inputs)
    terms.sum().backward()
    assert float(terms.abs().sum()) == 0 and float(stats.abs().sum()) == 0
    params = [p for p in trainer.objective.parameters() if p.requires_grad]
    assert all(p.grad is not None and float(p.grad.abs().sum()) == 0 for p in params)


def test_a_non_finite_loss_stops_the_run_naming_the_step(shards, tmp_path):
    trainer = tiny(shards, tmp_path / "run", steps=4, save_every=2)
    trainer.run(stop_at=2)
    resumed = tiny(shards, tmp_path / "run", steps=4, save_every=2, resume=True)
    with torch.no_grad():
        next(resumed.objective.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became non-finite at step 3"):
        resumed.run()
    assert latest_checkpoint(tmp_path / "run").name == "step-00000002"


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(shards, tmp_path):
    run = tmp_path / "run"
    tiny(shards, run, steps=6, save_every=3).run()
    with pytest.raises(FileExistsError, match="already holds a run.*--resume.*--overwrite"):
        tiny(shards, run, steps=3)
    tiny(shards, run, steps=2, save_every=1, overwrite=True).run()
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == [
        "step-00000001", "step-00000002"]  # the old run's step-3 / step-6 are gone
    assert latest_checkpoint(run).name == "step-00000002"
    assert max(losses(run)) == 2  # the old run's metrics are gone


def test_early_stopping_never_keeps_a_nan_metric():
    early = EarlyStopping("metric", True, patience=2)
    assert not early.update(1, {"metric": float("nan")})
    assert early.update(2, {"metric": 0.3}) and not early.update(3, {"metric": float("nan")})
    assert early.best["step"] == 2 and not early.exhausted
    assert not early.update(4, {"metric": 0.3}) and early.exhausted
    lower = EarlyStopping("loss", higher_is_better=False)
    assert lower.update(1, {"loss": 2.0}) and lower.update(2, {"loss": 1.0})
    assert not lower.update(3, {"loss": 1.5}) and lower.best["step"] == 2


def test_pretraining_with_patience_keeps_the_best_validation_loss(shards, tmp_path):
    result = tiny(shards, tmp_path / "run", steps=6, eval_every=1, patience=50).run()
    losses_seen = [h["loss"] for h in result["history"]]
    assert result["best"]["loss"] == min(losses_seen)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_seq_len_is_checked_against_the_positions_before_building(shards, tmp_path):
    with pytest.raises(ValueError, match="seq_len 100000 exceeds the 512 positions"):
        tiny(shards, tmp_path / "run", seq_len=100_000)
