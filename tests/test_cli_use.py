"""`unmask fill|score|embed|similarity|classify|ner|answer|attention` from the command line."""

from __future__ import annotations

import io
import json

import pytest

from test_pipelines_assets import MINILM, tiny
from unmask import pipeline
from unmask.cli import main


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {k: tiny(root / k, k) for k in ("mlm", "ner", "qa", "classify")}


def run_json(capsys, *argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fill_json_equals_the_pipeline(dirs, capsys):
    text = "The cat [MASK] on the mat."
    got = run_json(capsys, "fill", "-m", str(dirs["mlm"]), text, "-k", "3")
    assert got == [pipeline("fill-mask", dirs["mlm"])(text, top_k=3)]


def test_texts_from_stdin_and_files(dirs, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("sys.stdin", io.StringIO("Wolfgang lives in Berlin\n\nSarah too\n"))
    got = run_json(capsys, "ner", "-m", str(dirs["ner"]), "-a", "first")
    assert len(got) == 2 and all(isinstance(e["start"], int) for ents in got for e in ents)
    f = tmp_path / "texts.txt"
    f.write_text("I loved it\nawful\n")
    got = run_json(capsys, "classify", "-m", str(dirs["classify"]), "-f", str(f), "-k", "2")
    assert [len(r) for r in got] == [2, 2]


def test_tables_by_default(dirs, capsys):
    assert main(["score", "-m", str(dirs["mlm"]), "The cat sat."]) == 0
    assert "pseudo-log-likelihood" in capsys.readouterr().out
    assert main(["answer", "-m", str(dirs["qa"]), "-q", "Where?", "He lives in Berlin"]) == 0
    assert "answers to: Where?" in capsys.readouterr().out


def test_embed_and_similarity(capsys, tmp_path):
    out = tmp_path / "e.npy"
    got = run_json(capsys, "embed", "-m", str(MINILM), "a cat", "a dog", "-o", str(out))
    assert len(got) == 2 and len(got[0]["embedding"]) == 384 and out.is_file()
    sims = run_json(capsys, "similarity", "-m", str(MINILM), "a cat", "a kitten", "stocks")
    assert sims["similarity"][0][1] > sims["similarity"][0][2]


def test_errors_are_messages_not_tracebacks(dirs):
    with pytest.raises(SystemExit, match="no mask token"):
        main(["fill", "-m", str(dirs["mlm"]), "nothing to fill"])
    with pytest.raises(SystemExit, match="--model"):
        main(["fill", "a [MASK]", "--model", ""])


def test_attention_picture(dirs, tmp_path, capsys):
    png = tmp_path / "att.png"
    assert main(["attention", "-m", str(dirs["mlm"]), "The cat sat", "--png", str(png)]) == 0
    assert "2 layer(s) x 2 head(s)" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="layer 7 is out of range"):
        main(["attention", "-m", str(dirs["mlm"]), "x", "--layer", "7", "--png", str(png)])
