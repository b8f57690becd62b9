"""Task readers on the real files, and the errors a user gets for bad data (file:line + fix)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from unmask.tasks.readers import DataError, read_conll, read_rows, read_squad

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
