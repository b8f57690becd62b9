"""Read labelled task data: TSV / CSV / JSONL rows, CoNLL BIO files, SQuAD JSON.

Every reader returns plain dataclasses and raises DataError naming the file, the line and the
fix when a row is malformed, so a user's bad row never turns into a silent wrong label.

Row files (classification, similarity):
  .tsv / .csv  with a header naming the columns (text / sentence / sentence1, optional
               text_pair / sentence2, label / score), or without one: 2 columns are
               text,label and 3 columns text,text_pair,label (STS-B's CSV).
  .jsonl       one object per line with the same keys.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

TEXT_KEYS = ("text", "sentence", "sentence1", "sentence_a", "premise", "question")
PAIR_KEYS = ("text_pair", "sentence2", "sentence_b", "hypothesis")
LABEL_KEYS = ("label", "score", "labels", "similarity")


class DataError(ValueError):
    """Bad input data: the message starts with `file:line:`."""

    def __init__(self, path: str | Path, line: int | None, message: str):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line


@dataclass
class RowExample:
    """One sentence or sentence pair with its label (a class name, or a score as str)."""

    text: str
    label: str
    text_pair: str | None = None
    line: int = 0


@dataclass
class TaggedSentence:
    """One CoNLL sentence: words and their BIO tags (same length)."""

    words: list[str]
    tags: list[str]
    line: int = 0  # line of the first word


@dataclass
class QAExample:
    """One SQuAD question. answers: (text, answer_start) pairs, all of them (dev has several)."""

    id: str
    question: str
    context: str
    answers: list[tuple[str, int]] = field(default_factory=list)
    title: str = ""
    line: int = 0


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or is not a file)")
    return path


# --- rows ------------------------------------------------------------------------------------

def read_rows(path: str | Path) -> list[RowExample]:
    """Read a .tsv, .csv or .jsonl file of (text[, text_pair], label) rows."""
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = _read_jsonl(path)
    elif suffix in (".tsv", ".csv", ".txt"):
        rows = _read_delimited(path, "," if suffix == ".csv" else "\t")
    else:
        raise DataError(path, None, f"unknown extension {suffix!r}: use .tsv, .csv or .jsonl")
    if not rows:
        raise DataError(path, None, "no examples: the file is empty")
    return rows


def _pick(keys: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {k.lower().strip(): k for k in keys}
    return next((lowered[n] for n in names if n in lowered), None)


def _read_delimited(path: Path, delimiter: str) -> list[RowExample]:
    with open(path, encoding="utf-8", newline="") as f:
        # csv parses quoted fields (STS-B sentences contain commas); TSVs are not quoted.
        quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
        table = list(csv.reader(f, delimiter=delimiter, quoting=quoting))
    if not table:
        return []
    header = [c.strip() for c in table[0]]
    label_col = _pick(header, LABEL_KEYS)
    if label_col is not None:
        text_col = _pick(header, TEXT_KEYS)
        if text_col is None:
            raise DataError(path, 1, f"header {header} names a label column but no text column; "
                            f"call it one of {TEXT_KEYS}")
        pair_col = _pick(header, PAIR_KEYS)
        index = {name: header.index(name) for name in (text_col, pair_col, label_col) if name}
        start, body = 2, table[1:]
    else:  # no header: the column count says what is what
        width = len(table[0])
        if width not in (2, 3):
            raise DataError(path, 1, f"{width} columns and no header; without a header give "
                            "text,label or text,text_pair,label, or add a header row")
        names = ("text", "label") if width == 2 else ("text", "text_pair", "label")
        index = dict(zip(names, range(width)))
        text_col, pair_col, label_col = "text", "text_pair" if width == 3 else None, "label"
        start, body = 1, table
    width = len(header) if start == 2 else len(table[0])
    rows = []
    for n, cells in enumerate(body, start=start):
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if len(cells) != width:
            raise DataError(path, n, f"{len(cells)} columns where the file has {width}; a "
                            f"stray {'tab' if delimiter == chr(9) else 'comma (quote the field)'}?")
        get = {name: cells[i] for name, i in index.items()}
        rows.append(_row(path, n, get[text_col], get.get(pair_col) if pair_col else None,
                         get[label_col]))
    return rows


def _read_jsonl(path: Path) -> list[RowExample]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(path, n, f"not valid JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise DataError(path, n, "each line must be a JSON object")
            keys = list(obj)
            text_key, pair_key = _pick(keys, TEXT_KEYS), _pick(keys, PAIR_KEYS)
            label_key = _pick(keys, LABEL_KEYS)
            if text_key is None or label_key is None:
                raise DataError(path, n, f"needs a text key ({'/'.join(TEXT_KEYS)}) and a label "
                                f"key ({'/'.join(LABEL_KEYS)}); found {keys}")
            rows.append(_row(path, n, obj[text_key], obj.get(pair_key) if pair_key else None,
                             obj[label_key]))
    return rows


def _row(path, n, text, pair, label) -> RowExample:
    if not isinstance(text, str) or not text.strip():
        raise DataError(path, n, "empty text")
    if pair is not None and (not isinstance(pair, str) or not pair.strip()):
        raise DataError(path, n, "empty second text")
    if label is None or (isinstance(label, str) and not label.strip()):
        raise DataError(path, n, "missing label")
    label = str(label).strip()
    return RowExample(text=text.strip(), text_pair=pair.strip() if pair else None, label=label,
                      line=n)


# --- CoNLL -----------------------------------------------------------------------------------

_TAG = re.compile(r"^(O|[BI]-\S+)$")


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Read CoNLL BIO data: `word<TAB>tag` (or space-separated, tag last) per line, a blank
    line between sentences; -DOCSTART- lines are skipped. Tags must be O, B-TYPE or I-TYPE."""
    path = _check_file(path)
    sentences: list[TaggedSentence] = []
    words: list[str] = []
    tags: list[str] = []
    first = 0
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                if words:
                    sentences.append(TaggedSentence(words, tags, first))
                words, tags = [], []
                continue
            cells = line.split("\t") if "\t" in line else line.split()
            if cells[0] == "-DOCSTART-":
                continue
            if len(cells) < 2 or not cells[0].strip():
                raise DataError(path, n, f"expected `word<TAB>tag`, got {line!r}")
            tag = cells[-1].strip()
            if not _TAG.match(tag):
                raise DataError(path, n, f"tag {tag!r} is not BIO: use O, B-TYPE or I-TYPE")
            if not words:
                first = n
            words.append(cells[0].strip())
            tags.append(tag)
    if words:
        sentences.append(TaggedSentence(words, tags, first))
    if not sentences:
        raise DataError(path, None, "no sentences: the file is empty")
    return sentences


# --- SQuAD -----------------------------------------------------------------------------------

def read_squad(path: str | Path, articles: slice | None = None) -> list[QAExample]:
    """Read SQuAD v1.1 JSON (`data[].paragraphs[].{context, qas[]}`), optionally only the
    articles in `articles` (e.g. slice(-10, None) for the last ten). Every answer must be
    the text at its answer_start in the context."""
    path = _check_file(path)
    raw = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as err:
        raise DataError(path, err.lineno, f"not valid JSON ({err.msg})") from None
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise DataError(path, 1, "not SQuAD JSON: expected {\"data\": [articles]}")
    line_of = _id_lines(raw)
    out = []
    for article in data[articles] if articles is not None else data:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                qid = str(qa.get("id"))
                line = line_of.get(qid)
                if not isinstance(context, str) or not isinstance(qa.get("question"), str):
                    raise DataError(path, line, f"question {qid} lacks a context or question")
                answers = []
                for a in qa.get("answers", []):
                    text, start = a.get("text"), a.get("answer_start")
                    if not isinstance(text, str) or not isinstance(start, int):
                        raise DataError(path, line, f"question {qid}: an answer needs text and "
                                        "an integer answer_start")
                    if context[start:start + len(text)] != text:
                        raise DataError(
                            path, line,
                            f"question {qid}: answer {text!r} is not at answer_start={start} "
                            f"(the context there reads {context[start:start + len(text)]!r}); "
                            "fix answer_start to the answer's character offset in the context")
                    answers.append((text, start))
                out.append(QAExample(qid, qa["question"], context, answers,
                                     article.get("title", ""), line or 0))
    if not out:
        raise DataError(path, None, "no questions")
    return out


def _id_lines(raw: str) -> dict[str, int]:
    """Question id -> line of its `"id": "..."` in the file (for error messages)."""
    out, line, pos = {}, 1, 0
    for m in re.finditer(r'"id"\s*:\s*"([^"]*)"', raw):
        line += raw.count("\n", pos, m.start())  # counted incrementally: linear in the file
        pos = m.start()
        out.setdefault(m.group(1), line)
    return out


__all__ = ["DataError", "QAExample", "RowExample", "TaggedSentence", "read_conll", "read_rows",
           "read_squad"]
