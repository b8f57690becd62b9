"""Reading raw corpora: file discovery, decoding fallbacks, blank-line blocks, jsonl, gzip."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import pytest

from unmask.data import Corpus, DecodingWarning, decode_bytes, find_files

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pretrain_text"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/pretrain_text absent")

# The files DATA.md lists as cp1252 / latin-1 rather than UTF-8.
CP1252_FILES = [
    "gutenberg/chesterton-ball.txt",
    "gutenberg/shakespeare-caesar.txt",
    "inaugural/2005-Bush.txt",
    "state_union/1954-Eisenhower.txt",
    "state_union/1970-Nixon.txt",
    "state_union/1974-Nixon.txt",
]


def non_space(text: str) -> int:
    return len("".join(text.split()))


# ----------------------------------------------------------------------------- real data
@needs_data
@pytest.mark.parametrize("name", CP1252_FILES)
def test_cp1252_files_decode_completely_with_a_warning_naming_the_file(name):
    path = DATA / name
    raw = path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # the premise: these really are not UTF-8
    reference = raw.decode("cp1252")
    with pytest.warns(DecodingWarning, match=Path(name).name):
        (doc,) = list(Corpus(path))
    assert non_space(doc) == non_space(reference)
    assert doc == reference  # the accents are the cp1252 characters, not replacement marks
    assert "\ufffd" not in doc


@needs_data
def test_chesterton_accents_survive():
    with pytest.warns(DecodingWarning):
        (doc,) = list(Corpus(DATA / "gutenberg" / "chesterton-ball.txt"))
    assert {"è", "é", "î"} <= set(doc)


@needs_data
def test_blank_line_blocks_keep_every_character():
    path = DATA / "gutenberg" / "shakespeare-caesar.txt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecodingWarning)
        (whole,) = list(Corpus(path, documents="file"))
        blocks = list(Corpus(path, documents="blank_line"))
    assert len(blocks) > 100
    assert all(b.strip() and "\n\n" not in b for b in blocks)
    assert sum(non_space(b) for b in blocks) == non_space(whole)


@needs_data
def test_folders_and_globs_pick_text_files_sorted():
    files = find_files(DATA / "inaugural")
    assert len(files) == 55  # 55 addresses; README is not a .txt file and is left out
    assert files == sorted(files)
    assert all(f.suffix == ".txt" for f in files)
    assert find_files(str(DATA / "inaugural" / "18[0-4]*.txt")) == [
        f for f in files if f.name[:3] in ("180", "181", "182", "183", "184")
    ]
    # the same file twice (folder + explicit) is read once
    assert find_files([DATA / "inaugural", files[0]]) == files


# ----------------------------------------------------------------------------- bad input
def test_missing_inputs_name_themselves(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        Corpus(tmp_path / "nope.txt")
    with pytest.raises(FileNotFoundError, match=r"\*\.jsonl"):
        Corpus(str(tmp_path / "*.jsonl"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        Corpus(tmp_path / "empty")
    with pytest.raises(ValueError, match="blank_line"):
        Corpus(tmp_path, documents="paragraph")


def test_jsonl_errors_give_file_and_line(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "one"}\n\n{"text": "two"}\n{"text": oops}\n')
    with pytest.raises(ValueError, match=r"docs\.jsonl, line 4: not valid JSON"):
        list(Corpus(path))
    path.write_text('{"text": "one"}\n{"body": "two"}\n')
    with pytest.raises(ValueError, match=r"docs\.jsonl, line 2: no 'text' field .*'body'"):
        list(Corpus(path))
    path.write_text('{"text": 3}\n')
    with pytest.raises(ValueError, match="line 1: field 'text' is int"):
        list(Corpus(path))
    path.write_text('["text"]\n')
    with pytest.raises(ValueError, match="line 1: expected a JSON object"):
        list(Corpus(path))


# ----------------------------------------------------------------------------- formats
def test_jsonl_text_field_and_gzip(tmp_path):
    records = [{"body": "Première ligne.", "id": 1}, {"body": "   "}, {"body": "second\n\ndoc"}]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    (tmp_path / "a.jsonl").write_text(lines, encoding="utf-8")
    with gzip.open(tmp_path / "b.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    # a jsonl record is one document whatever `documents` says; whitespace-only ones are skipped
    expected = ["Première ligne.", "second\n\ndoc"]
    assert list(Corpus(tmp_path / "a.jsonl", text_field="body", documents="blank_line")) == expected
    assert list(Corpus(tmp_path / "b.jsonl.gz", text_field="body")) == expected
    assert list(Corpus(tmp_path, text_field="body")) == expected * 2


def test_text_gzip_and_blank_line_blocks(tmp_path):
    text = "First block,\r\nstill first.\r\n\r\n  \r\nSecond block.\n\n\n\nThird.\n"
    (tmp_path / "a.txt").write_text(text, newline="")
    with gzip.open(tmp_path / "a2.txt.gz", "wb") as f:
        f.write(text.encode("utf-8"))
    for name in ("a.txt", "a2.txt.gz"):
        assert list(Corpus(tmp_path / name)) == [text]
        assert list(Corpus(tmp_path / name, documents="blank_line")) == [
            "First block,\nstill first.", "Second block.", "Third."
        ]


def test_mixed_file_keeps_utf8_lines_and_byte_order_mark_is_dropped(tmp_path):
    data = "\ufeffcafé naïve\n".encode() + "smart “quotes”\n".encode("cp1252") + b"\x81\n"
    with pytest.warns(DecodingWarning, match=r"mixed\.txt.*2 line\(s\).*line 2"):
        text = decode_bytes(data, "mixed.txt")
    # UTF-8 lines stay UTF-8; the cp1252 line decodes as cp1252; 0x81 (undefined) as latin-1
    assert text == "café naïve\nsmart “quotes”\n\x81\n"
    path = tmp_path / "mixed.txt"
    path.write_bytes(data)
    with pytest.warns(DecodingWarning):
        assert list(Corpus(path, documents="blank_line")) == [text.rstrip("\n")]


def test_explicit_files_of_any_name_are_text_and_whitespace_docs_skipped(tmp_path):
    (tmp_path / "notes.md").write_text("# heading\n\nbody\n")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    assert list(Corpus([tmp_path / "notes.md", tmp_path / "blank.txt"])) == ["# heading\n\nbody\n"]
    assert Corpus(tmp_path).files == [tmp_path / "blank.txt"]  # folders take .txt/.jsonl/.gz
    assert Corpus(tmp_path).count() == 0


def test_from_texts_is_reiterable_only():
    corpus = Corpus.from_texts(["a b", "", "c"])
    assert list(corpus) == ["a b", "c"] and list(corpus) == ["a b", "c"]
    with pytest.raises(TypeError, match="re-iterable"):
        Corpus.from_texts(t for t in ["a"])
    with pytest.raises(TypeError, match="not one str"):
        Corpus.from_texts("a b")
