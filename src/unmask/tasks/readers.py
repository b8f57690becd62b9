"""Read labelled task data: TSV / CSV / JSONL rows, CoNLL BIO files, SQuAD JSON.

Every reader returns plain dataclasses and raises DataError naming the file, the line and the
fix when a row is malformed, so a user's bad row never turns into a silent wrong label.

Row files (classification, similarity):
  .tsv / .csv  with a header naming the columns (text / sentence / sentence1, optional
               text_pair / sentence2, label / score), or without one: 2 columns are
               text,label and 3 columns text,text_pair,label (STS-B's CSV).
  .jsonl       one object per line with the same keys.

Every file must be UTF-8 (a byte-order mark is allowed); anything else is refused at the line
of its first bad byte. Labels are kept as strings; one that reads as a number but is not a
finite one (nan, inf, 1e999) is refused, so a "nan" can neither train a NaN model nor turn a
regression into a classification.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
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


def _read_text(path: Path) -> str:
    """The file decoded as UTF-8 (without its byte-order mark, if any); DataError at the line
    and column of the first byte that is not UTF-8."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(path, 1, "the file is UTF-16 (it starts with a UTF-16 byte-order "
                        "mark); it must be UTF-8: re-save it as UTF-8")
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[:err.start].decode("utf-8")  # valid up to the bad byte
        line = len(io.StringIO(before, newline=None).readlines()) + before.endswith(("\n", "\r"))
        column = len(before) - max(before.rfind("\n"), before.rfind("\r"))
        raise DataError(path, max(line, 1), f"byte 0x{data[err.start]:02x} (column {column}) "
                        "is not UTF-8; the file must be UTF-8: convert it, e.g. `iconv -f "
                        "latin1 -t utf-8`") from None


_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def parse_number(label: str) -> float | None:
    """The label as a float when it is a plain, finite decimal number ("3", "-0.5", "1e-3"),
    else None: class names, and the nan / inf / 1_000 / non-ASCII digits that float() would
    also take."""
    if not _NUMBER.fullmatch(label.strip()):
        return None
    value = float(label)
    return value if math.isfinite(value) else None


def _non_finite(label: str) -> bool:
    """True when float() reads the label as NaN or an infinity (nan, -Infinity, 1e999)."""
    try:
        return not math.isfinite(float(label))
    except ValueError:
        return False


def check_label(path: str | Path, line: int | None, label: str) -> None:
    """DataError unless `label` can be a class name or a score: non-empty, one line, and not a
    number that is not finite."""
    if not label.strip():
        raise DataError(path, line, "missing label")
    if _non_finite(label):
        raise DataError(path, line, f"label {label!r} is not a finite number: scores must be "
                        "finite, and a class may not be named nan or inf (rename it)")
    if "\n" in label or "\r" in label or "\t" in label:
        raise DataError(path, line, f"label {label!r} holds a line break or tab; an unclosed "
                        "quote in the row above?")


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


def _table(path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(first line, cells) of every row that is not blank. csv parses quoted fields (STS-B
    sentences contain commas), strictly: a stray quote is an error, not a silently merged
    row; TSVs are not quoted."""
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(_read_text(path), newline=""), delimiter=delimiter,
                        quoting=quoting, strict=delimiter == ",")
    table, line = [], 1
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                table.append((line, cells))
            line = reader.line_num + 1
    except csv.Error as err:
        raise DataError(path, line, f"{err}: quote a field holding commas, quotes or line "
                        'breaks in double quotes, with each quote inside it doubled ("")') from None
    return table


def _read_delimited(path: Path, delimiter: str) -> list[RowExample]:
    table = _table(path, delimiter)
    if not table:
        return []
    first, header = table[0][0], [c.strip() for c in table[0][1]]
    width = len(header)
    label_col = _pick(header, LABEL_KEYS)
    if label_col is not None:
        text_col, pair_col = _pick(header, TEXT_KEYS), _pick(header, PAIR_KEYS)
        if text_col is None:
            raise DataError(path, first, f"header {header} names a label column but no text "
                            f"column; call it one of {TEXT_KEYS}")
        where = [header.index(c) if c else None for c in (text_col, pair_col, label_col)]
        table = table[1:]
    elif width in (2, 3):  # no header: the column count says what is what
        where = [0, 1 if width == 3 else None, width - 1]
    else:
        raise DataError(path, first, f"{width} columns and no header; without a header "
                        "give text,label or text,text_pair,label, or add a header row")
    rows = []
    for n, cells in table:
        if len(cells) != width:
            raise DataError(path, n, f"{len(cells)} columns where the file has {width}; a "
                            f"stray {'tab' if delimiter == chr(9) else 'comma (quote the field)'}?")
        text, pair, label = (cells[i] if i is not None else None for i in where)
        rows.append(_row(path, n, text, pair, label))
    return rows


def _json(path: Path, text: str, line: int | None):
    """json.loads, its errors (bad syntax, 5000-digit integers, deep nesting) as DataError."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, line or err.lineno, f"not valid JSON ({err.msg})") from None
    except (ValueError, RecursionError) as err:  # int digits limit; nesting
        raise DataError(path, line, f"not valid JSON ({err or 'nested too deeply'})") from None


def _read_jsonl(path: Path) -> list[RowExample]:
    rows = []
    # JSON strings cannot hold a raw line break, so lines are "\n"-separated (a "\r\n" ending
    # leaves "\r", which JSON reads as whitespace).
    for n, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        obj = _json(path, line, n)
        if not isinstance(obj, dict):
            raise DataError(path, n, "each line must be a JSON object")
        keys = list(obj)
        text_key, pair_key = _pick(keys, TEXT_KEYS), _pick(keys, PAIR_KEYS)
        label_key = _pick(keys, LABEL_KEYS)
        if text_key is None or label_key is None:
            raise DataError(path, n, f"needs a text key ({'/'.join(TEXT_KEYS)}) and a label "
                            f"key ({'/'.join(LABEL_KEYS)}); found {keys}")
        label = obj[label_key]
        if label is not None and not isinstance(label, (str, int, float)):
            raise DataError(path, n, f"label {label!r} must be a string or a number")
        rows.append(_row(path, n, obj[text_key], obj.get(pair_key) if pair_key else None,
                         label))
    return rows


def _row(path, n, text, pair, label) -> RowExample:
    if not isinstance(text, str):
        raise DataError(path, n, f"text {text!r} is not a string")
    if not text.strip():
        raise DataError(path, n, "empty text")
    if pair is not None and (not isinstance(pair, str) or not pair.strip()):
        raise DataError(path, n, "empty second text")
    label = "" if label is None else str(label).strip()
    check_label(path, n, label)
    return RowExample(text=text.strip(), text_pair=pair.strip() if pair else None, label=label,
                      line=n)


# --- CoNLL -----------------------------------------------------------------------------------

_TAG = re.compile(r"^(O|[BI]-\S+)$")


def read_conll(path: str | Path) -> list[TaggedSentence]:
    """Read CoNLL BIO data: `word<TAB>tag` (or space-separated, tag last) per line, a blank
    line between sentences; -DOCSTART- lines are skipped. Tags must be O, B-TYPE or I-TYPE."""
    path = _check_file(path)
    sentences: list[TaggedSentence] = []
    sentence: TaggedSentence | None = None  # the one being read: a blank line ends it
    # universal newlines, as open() in text mode: "\n", "\r\n" and "\r" end a line
    for n, raw in enumerate(io.StringIO(_read_text(path), newline=None), start=1):
        line = raw.rstrip("\n")
        if not line.strip():
            sentence = None
            continue
        cells = line.split("\t") if "\t" in line else line.split()
        if cells[0] == "-DOCSTART-":
            continue
        if len(cells) < 2 or not cells[0].strip():
            raise DataError(path, n, f"expected `word<TAB>tag`, got {line!r}")
        tag = cells[-1].strip()
        if not _TAG.fullmatch(tag):
            raise DataError(path, n, f"tag {tag!r} is not BIO: use O, B-TYPE or I-TYPE")
        if sentence is None:
            sentence = TaggedSentence([], [], n)
            sentences.append(sentence)
        sentence.words.append(cells[0].strip())
        sentence.tags.append(tag)
    if not sentences:
        raise DataError(path, None, "no sentences: the file is empty")
    return sentences


# --- SQuAD -----------------------------------------------------------------------------------

def read_squad(path: str | Path, articles: slice | None = None) -> list[QAExample]:
    """Read SQuAD v1.1 JSON (`data[].paragraphs[].{context, qas[]}`), optionally only the
    articles in `articles` (e.g. slice(-10, None) for the last ten). Every answer must be
    the text at its answer_start in the context."""
    path = _check_file(path)
    raw = _read_text(path)
    doc = _json(path, raw, None)
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise DataError(path, 1, "not SQuAD JSON: expected {\"data\": [articles]}")
    line_of = _id_lines(raw)
    seen: dict[str, int] = {}
    out = []
    for article in _objects(data[articles] if articles is not None else data, "articles", path):
        for paragraph in _objects(article.get("paragraphs", []), "paragraphs", path):
            context = paragraph.get("context")
            for qa in _objects(paragraph.get("qas", []), "qas", path):
                qid = str(qa.get("id"))
                lines = line_of.get(qid, [])
                line = lines[min(seen.get(qid, 0), len(lines) - 1)] if lines else None
                if "id" not in qa:
                    raise DataError(path, line, "a question without an id")
                if qid in seen:
                    raise DataError(path, line, f"question id {qid!r} appears twice (first at "
                                    f"line {lines[0] if lines else '?'}); ids must be unique")
                seen[qid] = 1
                question = qa.get("question")
                if not isinstance(context, str) or not isinstance(question, str) or \
                        not context.strip() or not question.strip():
                    raise DataError(path, line, f"question {qid} lacks a context or question")
                answers = []
                for a in _objects(qa.get("answers", []), "answers", path, line):
                    text, start = a.get("text"), a.get("answer_start")
                    if not isinstance(text, str) or not text or isinstance(start, bool) or \
                            not isinstance(start, int) or start < 0:
                        raise DataError(path, line, f"question {qid}: an answer needs a "
                                        "non-empty text and an integer answer_start >= 0")
                    if context[start:start + len(text)] != text:
                        raise DataError(
                            path, line,
                            f"question {qid}: answer {text!r} is not at answer_start={start} "
                            f"(the context there reads {context[start:start + len(text)]!r}); "
                            "fix answer_start to the answer's character offset in the context")
                    answers.append((text, start))
                out.append(QAExample(qid, question, context, answers,
                                     str(article.get("title", "")), line or 0))
    if not out:
        raise DataError(path, None, "no questions")
    return out


def _objects(items, what: str, path: Path, line: int | None = None) -> list[dict]:
    """`items` checked to be a list of JSON objects."""
    if not isinstance(items, list) or not all(isinstance(x, dict) for x in items):
        raise DataError(path, line, f"not SQuAD JSON: {what} must be a list of objects")
    return items


def _id_lines(raw: str) -> dict[str, list[int]]:
    """Question id -> lines of its `"id": "..."` in the file (for error messages)."""
    out: dict[str, list[int]] = {}
    line, pos = 1, 0
    for m in re.finditer(r'"id"\s*:\s*"([^"]*)"', raw):
        line += raw.count("\n", pos, m.start())  # counted incrementally: linear in the file
        pos = m.start()
        out.setdefault(m.group(1), []).append(line)
    return out


__all__ = ["DataError", "QAExample", "RowExample", "TaggedSentence", "check_label",
           "parse_number", "read_conll", "read_rows", "read_squad"]
