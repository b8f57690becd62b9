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
    monkeypatch.setattr("sys.stdin", io.StringIO("Wolfgang lives in Berlin\nSarah too\n"))
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


def test_every_line_is_one_row_blank_lines_are_refused(dirs, capsys, monkeypatch, tmp_path):
    f = tmp_path / "five.txt"
    f.write_text("a cat\n\nsits\n\non a mat\n")  # 5 lines, 2 blank: rows would not match
    with pytest.raises(SystemExit, match="five.txt line 2 is blank"):
        main(["embed", "-m", str(MINILM), "-f", str(f)])
    monkeypatch.setattr("sys.stdin", io.StringIO("I loved it\n  \nawful\n"))
    with pytest.raises(SystemExit, match="stdin line 2 is blank"):
        main(["classify", "-m", str(dirs["classify"])])
    f.write_text("a cat\r\nsits\r\non a mat\r\n")  # Windows line ends: still 3 rows
    assert len(run_json(capsys, "embed", "-m", str(MINILM), "-f", str(f))) == 3


def test_non_utf8_file_names_the_file_and_line(dirs, tmp_path):
    f = tmp_path / "latin1.txt"
    f.write_bytes("The cat [MASK].\nCaf\u00e9 [MASK] here.\n".encode("latin-1"))
    with pytest.raises(SystemExit, match=r"latin1.txt line 2 is not UTF-8 \(byte 0xe9"):
        main(["fill", "-m", str(dirs["mlm"]), "-f", str(f)])


def test_numeric_flags_are_checked(dirs, capsys):
    got = run_json(capsys, "fill", "-m", str(dirs["mlm"]), "The [MASK] sat.", "-k", "100000")
    assert len(got[0]) == 30522  # capped at the vocabulary, not a RuntimeError from topk
    # refused by argparse before any model loads: the usage and one line naming the flag
    for command, argv, message in (
            (["fill"], ["-k", "0"], "argument --top-k/-k: '0' is out of range: give an integer >= 1"),
            (["fill"], ["--top-k", "-1"], "argument --top-k/-k: '-1' is out of range: give an integer >= 1"),
            (["fill"], ["--batch-tokens", "0"], "argument --batch-tokens: '0' is out of range"),
            (["fill"], ["--beam-size", "0", "--joint"], "argument --beam-size: '0' is out of range"),
            (["classify"], ["--top-k", "0"], "argument --top-k/-k: '0' is out of range"),
            (["answer", "-q", "Where?"], ["-k", "x"], "argument --top-k/-k: 'x' is not an integer")):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "-m", "no-such-model", "The [MASK] sat.", *argv])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1] and not any("Traceback" in line for line in err)


def test_threads_on_every_command(dirs, capsys, monkeypatch):
    import torch

    from unmask.cli import build_parser

    before = torch.get_num_threads()
    try:
        for argv in (["fill", "x"], ["export", "onnx", "m", "--task", "embed", "--out", "o"],
                     ["finetune", "classify", "--model", "m", "--train", "t", "--dev", "d",
                      "--out", "o"]):
            assert build_parser().parse_args([*argv, "--threads", "1"]).threads == 1
        assert main(["score", "-m", str(dirs["mlm"]), "The cat sat.", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        capsys.readouterr()
        monkeypatch.setenv("UNMASK_THREADS", "2")
        assert main(["score", "-m", str(dirs["mlm"]), "The cat sat."]) == 0
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("UNMASK_THREADS", "two")
        assert main(["score", "-m", str(dirs["mlm"]), "The cat sat."]) == 2
        assert "UNMASK_THREADS must be a whole number" in capsys.readouterr().err
        with pytest.raises(SystemExit):
            main(["score", "x", "--threads", "0"])
    finally:
        torch.set_num_threads(before)
