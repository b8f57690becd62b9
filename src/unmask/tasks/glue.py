"""GLUE: the tasks in one table, their two file layouts, their metrics, the submission files.

    from unmask.tasks.glue import TASKS, read_split, find_tasks
    spec = TASKS["rte"]
    rows, ids = read_split(spec, "glue_data", spec.train)

Two layouts of the same data are read:
  glue_data/   the TSV files the original download script writes: CoLA/train.tsv (no header,
               4 columns), MRPC/train.tsv (a UTF-8 BOM before its header), MNLI/dev_matched.tsv
               and dev_mismatched.tsv, diagnostic/diagnostic.tsv (AX); test files carry an
               index column instead of a label. Read without quoting (csv.QUOTE_NONE), as GLUE's
               own readers do: the sentences contain bare quote characters.
  the hub's    one folder per config (cola, sst2, ..., ax) with `{split}-00000-of-00001.parquet`
  parquet      files holding the text columns, `label` (the class id, in the order of `labels`
               below; a float for STS-B; -1 on test) and `idx`. Needs pyarrow (`unmask[glue]`).

A row becomes a readers.RowExample (text, text_pair, label as the TSV writes it: "entailment",
"1", "3.800"); test rows get the placeholder label labels[0] (or "0" for scores), never scored,
and their index comes back beside them. Metrics are 0..1; the GLUE table shows them x100.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unmask.tasks.metrics import accuracy, binary_f1, matthews_corrcoef, pearson, spearman
from unmask.tasks.readers import DataError, RowExample


@dataclass(frozen=True)
class Split:
    """One file of a task in both layouts: the TSV path and the parquet prefix, relative to the
    data folder (parquet: `{hub}-*.parquet`, or any .parquet file in the folder `{hub}/`)."""

    tsv: str
    hub: str


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    name: our key (= the hub's config name); title: GLUE's name (glue_data/ folder, submission
    file stem, table column). columns: TSV (text, text_pair or None, label) header names, or
    column numbers for CoLA's headerless train / dev; test files are read by test_columns
    (text, text_pair) and their first column is the index. hub_columns: the parquet text
    columns. labels: class names as the TSV and the GLUE server write them, in the hub's label-id
    order; None = a regression on scores. metrics: shown in this order, their mean is the task's
    score. dev: the dev splits ("dev", or MNLI's "m" / "mm"; the first picks the best model);
    test: submission file stem -> split. model: the task whose trained model predicts (AX: MNLI).
    """

    name: str
    title: str
    columns: tuple
    hub_columns: tuple[str, str | None]
    labels: tuple[str, ...] | None
    metrics: tuple[str, ...]
    dev: dict[str, Split]
    test: dict[str, Split]
    test_columns: tuple[str, str | None] = ("", None)
    train: Split = field(default=Split("", ""))

    @property
    def regression(self) -> bool:
        return self.labels is None


def _task(name, title, columns, hub_columns, labels, metrics, test_columns=None, dev=None,
          test=None) -> GlueTask:
    """A table row with the usual file names (train / dev / test in the task's folders)."""
    def split(tsv, hub):
        return Split(f"{title}/{tsv}.tsv", f"{name}/{hub}")

    return GlueTask(name, title, columns, hub_columns, labels, metrics,
                    dev={k: split(*v) for k, v in (dev or {"dev": ("dev", "validation")}).items()},
                    test={k: split(*v) for k, v in (test or {title: ("test", "test")}).items()},
                    test_columns=test_columns or tuple(columns[:2]),
                    train=split("train", "train"))


BINARY = ("0", "1")
NLI = ("entailment", "not_entailment")
# name   title    TSV (text, pair, label) columns           hub text columns
TASKS: dict[str, GlueTask] = {t.name: t for t in [
    _task("cola", "CoLA", (3, None, 1), ("sentence", None), BINARY, ("mcc",),
          test_columns=("sentence", None)),
    _task("sst2", "SST-2", ("sentence", None, "label"), ("sentence", None), BINARY,
          ("accuracy",)),
    _task("mrpc", "MRPC", ("#1 String", "#2 String", "Quality"), ("sentence1", "sentence2"),
          BINARY, ("f1", "accuracy")),
    _task("stsb", "STS-B", ("sentence1", "sentence2", "score"), ("sentence1", "sentence2"),
          None, ("pearson", "spearman")),
    _task("qqp", "QQP", ("question1", "question2", "is_duplicate"), ("question1", "question2"),
          BINARY, ("f1", "accuracy")),
    _task("mnli", "MNLI", ("sentence1", "sentence2", "gold_label"), ("premise", "hypothesis"),
          ("entailment", "neutral", "contradiction"), ("accuracy",),
          dev={"m": ("dev_matched", "validation_matched"),
               "mm": ("dev_mismatched", "validation_mismatched")},
          test={"MNLI-m": ("test_matched", "test_matched"),
                "MNLI-mm": ("test_mismatched", "test_mismatched")}),
    _task("qnli", "QNLI", ("question", "sentence", "label"), ("question", "sentence"), NLI,
          ("accuracy",)),
    _task("rte", "RTE", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"), NLI,
          ("accuracy",)),
    _task("wnli", "WNLI", ("sentence1", "sentence2", "label"), ("sentence1", "sentence2"),
          BINARY, ("accuracy",)),
]}
# AX, the diagnostic set: test only, predicted by the MNLI model (its own folder in both layouts).
AX = Split("diagnostic/diagnostic.tsv", "ax/test")
AX_COLUMNS = ("sentence1", "sentence2")
AX_HUB_COLUMNS = ("premise", "hypothesis")
INDEX_COLUMNS = ("index", "id", "idx")  # the index column of test TSVs (QQP calls it id)


# --- reading ---------------------------------------------------------------------------------

def _parquet_files(root: Path, split: Split) -> list[Path]:
    prefix = root / split.hub
    files = sorted(prefix.parent.glob(f"{prefix.name}-*.parquet"))
    return files or (sorted(prefix.glob("*.parquet")) if prefix.is_dir() else [])


def split_exists(root: str | Path, split: Split) -> bool:
    """True when the split is in `root` in either layout."""
    root = Path(root)
    return (root / split.tsv).is_file() or bool(_parquet_files(root, split))


def find_tasks(root: str | Path) -> dict[str, str]:
    """Every task of TASKS in `root`, name -> "" when it has train and dev files, else what is
    missing (e.g. QNLI with only dev / test)."""
    found = {}
    for name, spec in TASKS.items():
        need = [spec.train, next(iter(spec.dev.values()))]
        missing = [s.tsv for s in need if not split_exists(root, s)]
        if len(missing) < len(need):
            found[name] = f"no {' or '.join(missing)}" if missing else ""
    return found


def read_split(spec: GlueTask, root: str | Path, split: Split, test: bool = False
               ) -> tuple[list[RowExample], list[str]]:
    """The rows of one split and their GLUE indices (the `index` / `idx` column; the line
    number where a file has none). test=True: the rows carry no label.

    Raises FileNotFoundError when the split is in neither layout, DataError on a bad row."""
    root = Path(root)
    path = root / split.tsv
    if path.is_file():
        return _read_tsv(spec, _follow_link_file(path), test, split is AX)
    files = _parquet_files(root, split)
    if files:
        return _read_parquet(spec, files, test, split is AX)
    raise FileNotFoundError(f"{spec.title}: neither {path} nor {root / split.hub}-*.parquet "
                            f"exists; give --data the glue_data/ folder or the hub's glue folder")


def _follow_link_file(path: Path) -> Path:
    """A symbolic link that git checked out as a text file holding its target (core.symlinks
    false: the file is the target's relative path, on one line) -> the target."""
    if path.stat().st_size < 512:
        target = path.read_text(encoding="utf-8", errors="replace").strip()
        if target and "\n" not in target and "\t" not in target and \
                (path.parent / target).is_file():
            return path.parent / target
    return path


def _placeholder(spec: GlueTask) -> str:
    return "0" if spec.regression else spec.labels[0]


def _check_label(spec: GlueTask, path, line: int, label: str) -> str:
    if spec.regression:
        try:
            float(label)
        except ValueError:
            raise DataError(path, line, f"{spec.title} score {label!r} is not a number") from None
    elif label not in spec.labels:
        raise DataError(path, line, f"{spec.title} label {label!r} is not one of "
                        f"{list(spec.labels)}")
    return label


def _row(path, line, text, pair, label) -> RowExample:
    if not text.strip() or (pair is not None and not pair.strip()):
        raise DataError(path, line, "empty sentence")
    return RowExample(text=text.strip(), text_pair=pair.strip() if pair is not None else None,
                      label=label, line=line)


def _read_tsv(spec: GlueTask, path: Path, test: bool, ax: bool):
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: MRPC's BOM
        table = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    columns = AX_COLUMNS if ax else spec.test_columns if test else spec.columns
    header, body, where = [], table, list(columns)  # no header: columns by number (CoLA)
    if isinstance(columns[0], str):
        header, body = [c.strip() for c in table[0]] if table else [], table[1:]
        missing = [c for c in columns if c is not None and c not in header]
        if missing:
            raise DataError(path, 1, f"{spec.title}: header {header} lacks {missing}; is this "
                            "the glue_data/ file of this task?")
        where = [header.index(c) if c is not None else None for c in columns]
    index_col = next((header.index(c) for c in INDEX_COLUMNS if c in header), None)
    width = len(header) or max(c for c in where if c is not None) + 1
    rows, ids = [], []
    for n, cells in enumerate(body, start=2 if header else 1):
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) < width:
            raise DataError(path, n, f"{len(cells)} columns where {spec.title} has {width}; a "
                            "line break inside a sentence?")
        label = _placeholder(spec) if test else _check_label(spec, path, n, cells[where[2]].strip())
        pair = cells[where[1]] if where[1] is not None else None
        rows.append(_row(path, n, cells[where[0]], pair, label))
        ids.append(cells[index_col].strip() if index_col is not None else str(len(ids)))
    if not rows:
        raise DataError(path, None, "no examples: the file is empty")
    return rows, ids


def _pyarrow():
    try:
        import pyarrow.parquet as pq
    except ImportError as e:  # OSError: the CLI prints it as one line
        raise OSError(f"reading GLUE parquet files needs pyarrow ({e}): pip install "
                      "'unmask[glue]' (or pyarrow), or use the glue_data/ TSV layout") from None
    return pq


def _read_parquet(spec: GlueTask, files: list[Path], test: bool, ax: bool):
    pq = _pyarrow()
    text_col, pair_col = AX_HUB_COLUMNS if ax else spec.hub_columns
    wanted = [c for c in (text_col, pair_col, "idx", "label") if c is not None]
    rows, ids = [], []
    for path in files:
        table = pq.read_table(path)
        missing = [c for c in wanted if c not in table.column_names]
        if missing:
            raise DataError(path, None, f"{spec.title}: columns {table.column_names} lack "
                            f"{missing}; is this the hub's `{spec.name}` config?")
        data = table.select(wanted).to_pydict()
        for k in range(table.num_rows):
            label = data["label"][k]
            if test:
                label = _placeholder(spec)
            elif spec.regression:
                label = str(label)
            elif not isinstance(label, int) or not 0 <= label < len(spec.labels):
                raise DataError(path, k + 1, f"{spec.title} label id {label!r} is not in "
                                f"0..{len(spec.labels) - 1} (test splits carry -1: no labels)")
            else:
                label = spec.labels[label]
            pair = data[pair_col][k] if pair_col else None
            rows.append(_row(path, k + 1, data[text_col][k], pair, label))
            ids.append(str(data["idx"][k]))
    return rows, ids


# --- metrics and the GLUE row ----------------------------------------------------------------

def task_metrics(spec: GlueTask, gold: Sequence[str], pred: Sequence) -> dict[str, float]:
    """The task's metrics (0..1) of predictions against gold labels (scores for STS-B)."""
    if spec.regression:
        g = [float(x) for x in gold]
        return {"pearson": pearson(g, pred), "spearman": spearman(g, pred)}
    out = {"accuracy": accuracy(gold, pred)}
    if "mcc" in spec.metrics:
        out["mcc"] = matthews_corrcoef(gold, pred)
    if "f1" in spec.metrics:
        out["f1"] = binary_f1(gold, pred, positive=spec.labels[1])
    return out


def columns(spec: GlueTask) -> list[tuple[str, str]]:
    """(dev key, metric) of each number in the task's cell of a GLUE row, in order: MRPC's
    F1 / accuracy, STS-B's Pearson / Spearman, MNLI's matched / mismatched accuracy."""
    return [(key, metric) for key in spec.dev for metric in spec.metrics]


def task_score(spec: GlueTask, dev: dict[str, dict[str, float]]) -> float:
    """The task's score as the GLUE leaderboard counts it: the mean of its numbers."""
    values = [dev[key][metric] for key, metric in columns(spec)]
    return sum(values) / len(values)


def header_of(spec: GlueTask) -> str:
    """Column header as in published rows: `MRPC (F1/acc)`, `MNLI (m/mm)`."""
    short = {"mcc": "MCC", "accuracy": "acc", "f1": "F1", "pearson": "P", "spearman": "S"}
    if len(spec.dev) > 1:
        return f"{spec.title}-{'/'.join(spec.dev)}"
    return f"{spec.title} ({'/'.join(short[m] for m in spec.metrics)})"


# --- submission files ------------------------------------------------------------------------

def format_predictions(spec: GlueTask, ids: Sequence[str], pred: Sequence) -> str:
    """A GLUE-server prediction file: `index<TAB>prediction` header, then one row per test
    example: the label string, or the score clipped to STS-B's 0..5 with 3 decimals."""
    if len(ids) != len(pred):
        raise ValueError(f"{spec.title}: {len(ids)} test rows but {len(pred)} predictions")
    return "index\tprediction\n" + "".join(
        f"{i}\t{min(5.0, max(0.0, p)):.3f}\n" if spec.regression else f"{i}\t{p}\n"
        for i, p in zip(ids, pred))


def write_zip(directory: str | Path, zip_path: str | Path) -> list[str]:
    """submission.zip of the .tsv files in `directory`, at the archive's root, as the GLUE
    server expects. Returns the names written."""
    names = sorted(p.name for p in Path(directory).glob("*.tsv"))
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in names:
            z.write(Path(directory) / name, arcname=name)
    return names


SUBMISSION_FILES = [stem for t in TASKS.values() for stem in t.test] + ["AX"]

__all__ = ["AX", "SUBMISSION_FILES", "TASKS", "GlueTask", "Split", "columns", "find_tasks",
           "format_predictions", "header_of", "read_split", "split_exists", "task_metrics",
           "task_score", "write_zip"]
