"""GLUE's task table, its readers (glue_data/ TSV and the hub's parquet), metrics, table and
submission files. The files are written here in the exact formats GLUE's download script and
the hub publish (MNLI, QQP and MRPC are not redistributable, so no real copy is in ../shared);
the real CoLA / SST-2 / STS-B / RTE / WNLI / QNLI files are read when ../shared is present."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from unmask.tasks.glue import (
    AX,
    SUBMISSION_FILES,
    TASKS,
    find_tasks,
    format_predictions,
    header_of,
    read_split,
    task_metrics,
    task_score,
    write_zip,
)
from unmask.tasks.glue_run import glue_average, glue_table, parse_overrides
from unmask.tasks.readers import DataError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"

MNLI_TRAIN = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
              "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
            "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
            "label4\tlabel5\tgold_label")
MNLI_TEST = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
             "sentence1_parse\tsentence2_parse\tsentence1\tsentence2")
STSB = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"


def _write(path: Path, lines: list[str], bom: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def write_glue_data(root: Path, n: int = 4) -> Path:
    """A glue_data/ folder with every task, n rows per file, in the download script's formats."""
    nli = ["entailment", "neutral", "contradiction"]
    two = ["entailment", "not_entailment"]
    cola = [f"gj04\t{i % 2}\t{'*' if i % 2 == 0 else ''}\tThe dog {i} barked ." for i in range(n)]
    _write(root / "CoLA/train.tsv", cola)
    _write(root / "CoLA/dev.tsv", cola)
    _write(root / "CoLA/test.tsv", ["index\tsentence"] + [f"{i}\tA cat {i} sat ." for i in range(n)])
    _write(root / "SST-2/train.tsv", ["sentence\tlabel"] + [f"good film {i} \t{i % 2}"
                                                            for i in range(n)])
    _write(root / "SST-2/dev.tsv", ["sentence\tlabel"] + [f"bad film {i} \t{i % 2}"
                                                          for i in range(n)])
    _write(root / "SST-2/test.tsv", ["index\tsentence"] + [f"{i}\tok film {i}" for i in range(n)])
    mrpc = [f"{i % 2}\t{1000 + i}\t{2000 + i}\tHe said \"{i}\" twice .\tHe said {i} ."
            for i in range(n)]
    _write(root / "MRPC/train.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + mrpc, True)
    _write(root / "MRPC/dev.tsv", ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"] + mrpc, True)
    _write(root / "MRPC/test.tsv", ["index\t#1 ID\t#2 ID\t#1 String\t#2 String"] +
           [f"{i}\t{1000 + i}\t{2000 + i}\tShe left {i} .\tShe went {i} ." for i in range(n)],
           True)
    stsb = [f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\tA man {i} runs .\t"
            f"A man runs .\t{i * 1.25:.3f}" for i in range(n)]
    _write(root / "STS-B/train.tsv", [STSB + "\tscore"] + stsb)
    _write(root / "STS-B/dev.tsv", [STSB + "\tscore"] + stsb)
    _write(root / "STS-B/test.tsv", [STSB] + [
        f"{i}\tmain-captions\tMSRvid\t2012test\t{i:04d}\tnone\tnone\tA girl {i} .\tA girl ."
        for i in range(n)])
    qqp = [f"{i}\t{10 + i}\t{20 + i}\tHow do I cook {i}?\tWhat is cooking {i}?\t{i % 2}"
           for i in range(n)]
    _write(root / "QQP/train.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"] + qqp)
    _write(root / "QQP/dev.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"] + qqp)
    _write(root / "QQP/test.tsv", ["id\tquestion1\tquestion2"] +
           [f"{i}\tWhy {i}?\tHow {i}?" for i in range(n)])
    parses = "( ( A ) )\t( ( B ) )\t(ROOT (S A))\t(ROOT (S B))"
    _write(root / "MNLI/train.tsv", [MNLI_TRAIN] + [
        f"{i}\t{i}1\t{i}1e\tgovernment\t{parses}\tA man {i} sleeps .\tA man rests .\t"
        f"{nli[i % 3]}\t{nli[i % 3]}" for i in range(n)])
    for dev in ("dev_matched", "dev_mismatched"):
        _write(root / f"MNLI/{dev}.tsv", [MNLI_DEV] + [
            f"{i}\t{i}2\t{i}2n\tfiction\t{parses}\tA dog {i} runs .\tAn animal moves .\t"
            f"{nli[i % 3]}\t{nli[i % 3]}\t{nli[0]}\t{nli[1]}\t{nli[i % 3]}\t{nli[i % 3]}"
            for i in range(n)])
    for test in ("test_matched", "test_mismatched"):
        _write(root / f"MNLI/{test}.tsv", [MNLI_TEST] + [
            f"{i}\t{i}3\t{i}3c\tslate\t{parses}\tA bird {i} sings .\tA bird is quiet ."
            for i in range(n)])
    _write(root / "diagnostic/diagnostic.tsv", ["index\tsentence1\tsentence2"] +
           [f"{i}\tThe cat {i} sat.\tThe cat did not sit." for i in range(n)])
    for title, labels, cols in (("QNLI", two, "question\tsentence"),
                                ("RTE", two, "sentence1\tsentence2"),
                                ("WNLI", ["0", "1"], "sentence1\tsentence2")):
        rows = [f"{i}\tWho came {i}?\tJohn came {i} .\t{labels[i % 2]}" for i in range(n)]
        _write(root / f"{title}/train.tsv", [f"index\t{cols}\tlabel"] + rows)
        _write(root / f"{title}/dev.tsv", [f"index\t{cols}\tlabel"] + rows)
        _write(root / f"{title}/test.tsv", [f"index\t{cols}"] +
               [f"{i}\tWho left {i}?\tMary left {i} ." for i in range(n)])
    return root


def write_hub_glue(root: Path, n: int = 4) -> Path:
    """The hub's parquet layout (nyu-mll/glue): one folder per config, label ids, idx."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    def put(path: str, columns: dict) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(columns), root / f"{path}-00000-of-00001.parquet")

    idx = list(range(n))
    for split, labels in (("train", [i % 2 for i in idx]), ("validation", [i % 2 for i in idx]),
                          ("test", [-1] * n)):
        put(f"cola/{split}", {"sentence": [f"The dog {i} barked ." for i in idx],
                              "label": labels, "idx": idx})
        put(f"rte/{split}", {"sentence1": [f"John came {i} ." for i in idx],
                             "sentence2": [f"John {i} is here ." for i in idx],
                             "label": labels, "idx": idx})
        put(f"stsb/{split}", {"sentence1": [f"A man {i} runs ." for i in idx],
                              "sentence2": ["A man runs ."] * n,
                              "label": [-1.0] * n if split == "test" else
                              [i * 1.25 for i in idx], "idx": idx})
    for split in ("train", "validation_matched", "validation_mismatched", "test_matched",
                  "test_mismatched"):
        put(f"mnli/{split}", {"premise": [f"A dog {i} runs ." for i in idx],
                              "hypothesis": ["An animal moves ."] * n,
                              "label": [-1] * n if split.startswith("test") else
                              [i % 3 for i in idx], "idx": idx})
    put("ax/test", {"premise": [f"The cat {i} sat." for i in idx],
                    "hypothesis": ["The cat did not sit."] * n, "label": [-1] * n, "idx": idx})
    return root


# --- the table -------------------------------------------------------------------------------

def test_table_covers_glue_with_its_metrics():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert TASKS["cola"].metrics == ("mcc",)
    assert TASKS["mrpc"].metrics == TASKS["qqp"].metrics == ("f1", "accuracy")
    assert TASKS["stsb"].regression and TASKS["stsb"].metrics == ("pearson", "spearman")
    assert TASKS["mnli"].labels == ("entailment", "neutral", "contradiction")
    assert list(TASKS["mnli"].dev) == ["m", "mm"]
    assert SUBMISSION_FILES == ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI-m", "MNLI-mm",
                                "QNLI", "RTE", "WNLI", "AX"]
    assert [header_of(TASKS[n]) for n in ("cola", "mrpc", "stsb", "mnli")] == [
        "CoLA (MCC)", "MRPC (F1/acc)", "STS-B (P/S)", "MNLI-m/mm"]


# --- glue_data/ TSV --------------------------------------------------------------------------

def test_reads_every_task_of_glue_data(tmp_path):
    root = write_glue_data(tmp_path / "glue_data")
    assert find_tasks(root) == {name: "" for name in TASKS}
    cola, _ = read_split(TASKS["cola"], root, TASKS["cola"].train)  # no header, 4 columns
    assert [(r.text, r.label, r.text_pair) for r in cola[:2]] == [
        ("The dog 0 barked .", "0", None), ("The dog 1 barked .", "1", None)]
    mrpc, _ = read_split(TASKS["mrpc"], root, TASKS["mrpc"].dev["dev"])  # BOM before Quality
    assert (mrpc[0].text, mrpc[0].text_pair, mrpc[1].label) == (
        'He said "0" twice .', "He said 0 .", "1")  # bare quotes kept: no CSV quoting
    qqp, _ = read_split(TASKS["qqp"], root, TASKS["qqp"].train)
    assert (qqp[1].text, qqp[1].text_pair, qqp[1].label) == ("How do I cook 1?",
                                                             "What is cooking 1?", "1")
    stsb, _ = read_split(TASKS["stsb"], root, TASKS["stsb"].train)
    assert [r.label for r in stsb] == ["0.000", "1.250", "2.500", "3.750"]
    mnli = TASKS["mnli"]
    train, _ = read_split(mnli, root, mnli.train)  # 12 columns, gold_label last
    mm, _ = read_split(mnli, root, mnli.dev["mm"])  # 16 columns
    assert [r.label for r in train[:3]] == ["entailment", "neutral", "contradiction"]
    assert (mm[2].text, mm[2].text_pair, mm[2].label) == ("A dog 2 runs .", "An animal moves .",
                                                          "contradiction")
    qnli, _ = read_split(TASKS["qnli"], root, TASKS["qnli"].dev["dev"])
    assert (qnli[0].text, qnli[0].text_pair, qnli[0].label) == ("Who came 0?", "John came 0 .",
                                                                "entailment")


def test_test_files_give_indices_and_no_labels(tmp_path):
    root = write_glue_data(tmp_path / "glue_data")
    for name, spec in TASKS.items():
        for stem, split in spec.test.items():
            rows, ids = read_split(spec, root, split, test=True)
            assert ids == ["0", "1", "2", "3"], (name, stem)
            assert all(r.text for r in rows) and len(rows) == 4
    rows, ids = read_split(TASKS["qqp"], root, TASKS["qqp"].test["QQP"], test=True)
    assert (rows[2].text, rows[2].text_pair, ids[2]) == ("Why 2?", "How 2?", "2")  # id column
    rows, ids = read_split(TASKS["mnli"], root, AX, test=True)
    assert (rows[1].text, rows[1].text_pair) == ("The cat 1 sat.", "The cat did not sit.")
    rows, _ = read_split(TASKS["mrpc"], root, TASKS["mrpc"].test["MRPC"], test=True)
    assert rows[0].text_pair == "She went 0 ."


def test_bad_rows_name_the_file_and_line(tmp_path):
    root = write_glue_data(tmp_path / "glue_data")
    path = root / "RTE/dev.tsv"
    path.write_text(path.read_text() + "9\tA .\tB .\tmaybe\n")
    with pytest.raises(DataError, match=r"RTE/dev.tsv:6: RTE label 'maybe' is not one of"):
        read_split(TASKS["rte"], root, TASKS["rte"].dev["dev"])
    path.write_text("index\tsentence1\tsentence2\tlabel\n0\tA .\tentailment\n")
    with pytest.raises(DataError, match=r"dev.tsv:2: 3 columns where RTE has 4"):
        read_split(TASKS["rte"], root, TASKS["rte"].dev["dev"])
    path.write_text("index\tpremise\thypothesis\tlabel\n0\tA .\tB .\tentailment\n")
    with pytest.raises(DataError, match=r"lacks \['sentence1', 'sentence2'\]"):
        read_split(TASKS["rte"], root, TASKS["rte"].dev["dev"])
    (root / "STS-B/dev.tsv").write_text(f"{STSB}\tscore\n" + "0\tg\tf\ty\t0\tn\tn\tA\tB\thigh\n")
    with pytest.raises(DataError, match="score 'high' is not a number"):
        read_split(TASKS["stsb"], root, TASKS["stsb"].dev["dev"])
    with pytest.raises(FileNotFoundError, match="neither .*QQP/dev.tsv nor"):
        read_split(TASKS["qqp"], tmp_path / "elsewhere", TASKS["qqp"].dev["dev"])


def test_a_symlink_checked_out_as_a_text_file_is_followed(tmp_path):
    """git writes a symlink as a file holding its target when core.symlinks is false."""
    root = write_glue_data(tmp_path / "glue_data")
    (tmp_path / "sst2").mkdir()
    (root / "SST-2/train.tsv").replace(tmp_path / "sst2/train.tsv")
    (root / "SST-2/train.tsv").write_text("../../sst2/train.tsv")
    rows, _ = read_split(TASKS["sst2"], root, TASKS["sst2"].train)
    assert [r.text for r in rows[:2]] == ["good film 0", "good film 1"]


# --- the hub's parquet -----------------------------------------------------------------------

def test_reads_the_hub_parquet_layout(tmp_path):
    root = write_hub_glue(tmp_path / "glue")
    assert find_tasks(root) == {"cola": "", "stsb": "", "mnli": "", "rte": ""}
    rte, _ = read_split(TASKS["rte"], root, TASKS["rte"].train)
    assert [r.label for r in rte[:2]] == ["entailment", "not_entailment"]  # ids 0, 1
    assert (rte[1].text, rte[1].text_pair) == ("John came 1 .", "John 1 is here .")
    mm, _ = read_split(TASKS["mnli"], root, TASKS["mnli"].dev["mm"])
    assert [r.label for r in mm[:3]] == ["entailment", "neutral", "contradiction"]
    stsb, _ = read_split(TASKS["stsb"], root, TASKS["stsb"].dev["dev"])
    assert [float(r.label) for r in stsb] == [0.0, 1.25, 2.5, 3.75]
    rows, ids = read_split(TASKS["cola"], root, TASKS["cola"].test["CoLA"], test=True)
    assert ids == ["0", "1", "2", "3"] and rows[3].text == "The dog 3 barked ."
    rows, ids = read_split(TASKS["mnli"], root, AX, test=True)
    assert rows[0].text == "The cat 0 sat." and ids[-1] == "3"


def test_same_rows_from_both_layouts(tmp_path):
    tsv = write_glue_data(tmp_path / "glue_data")
    hub = write_hub_glue(tmp_path / "glue")
    for name in ("cola", "mnli"):
        spec = TASKS[name]
        split = spec.dev["dev" if name == "cola" else "m"]
        a, _ = read_split(spec, tsv, split)
        b, _ = read_split(spec, hub, split)
        assert [(r.text, r.label) for r in a] == [(r.text, r.label) for r in b]


def test_hub_label_out_of_range_and_test_split_read_as_training(tmp_path):
    root = write_hub_glue(tmp_path / "glue")
    (root / "rte/test-00000-of-00001.parquet").replace(root / "rte/validation-00000-of-00001"
                                                              ".parquet")
    with pytest.raises(DataError, match=r"label id -1 is not in 0..1 \(test splits carry -1"):
        read_split(TASKS["rte"], root, TASKS["rte"].dev["dev"])


def test_missing_pyarrow_is_one_clear_line(tmp_path, monkeypatch):
    root = write_hub_glue(tmp_path / "glue")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails
    with pytest.raises(OSError, match=r"needs pyarrow .*pip install 'unmask\[glue\]'"):
        read_split(TASKS["cola"], root, TASKS["cola"].train)


# --- metrics, the row, submission files ------------------------------------------------------

def test_task_metrics_match_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    gold = ["1", "0", "1", "1", "0", "1", "0", "0", "1", "1"]
    pred = ["1", "0", "0", "1", "1", "1", "0", "1", "1", "0"]
    m = task_metrics(TASKS["cola"], gold, pred)
    assert m["mcc"] == pytest.approx(sk.matthews_corrcoef(gold, pred), abs=1e-12)
    m = task_metrics(TASKS["mrpc"], gold, pred)
    assert m["f1"] == pytest.approx(sk.f1_score(gold, pred, pos_label="1"), abs=1e-12)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(gold, pred), abs=1e-12)
    stats = pytest.importorskip("scipy.stats")
    g, p = [0.0, 1.2, 3.4, 5.0, 2.2], [0.3, 1.0, 3.9, 4.1, 2.0]
    m = task_metrics(TASKS["stsb"], [str(x) for x in g], p)
    assert m["pearson"] == pytest.approx(stats.pearsonr(g, p)[0], abs=1e-12)
    assert m["spearman"] == pytest.approx(stats.spearmanr(g, p)[0], abs=1e-12)


def _record(name, seed, dev):
    return {"task": name, "seed": seed, "dev": dev, "score": task_score(TASKS[name], dev)}


def test_row_and_average_as_the_leaderboard_counts():
    records = {
        "mrpc": [_record("mrpc", 0, {"dev": {"f1": 0.90, "accuracy": 0.86}}),
                 _record("mrpc", 1, {"dev": {"f1": 0.88, "accuracy": 0.84}})],
        "mnli": [_record("mnli", 0, {"m": {"accuracy": 0.84}, "mm": {"accuracy": 0.82}}),
                 _record("mnli", 1, {"m": {"accuracy": 0.86}, "mm": {"accuracy": 0.84}})],
        "cola": [_record("cola", 0, {"dev": {"mcc": 0.50}}),
                 _record("cola", 1, {"dev": {"mcc": 0.60}})],
    }
    assert records["mrpc"][0]["score"] == pytest.approx(0.88)  # mean of F1 and accuracy
    assert glue_average(records, 0) == pytest.approx((0.88 + 0.83 + 0.50) / 3)
    table = glue_table({"bert": records}).splitlines()
    assert table[0] == "| Model | CoLA (MCC) | MRPC (F1/acc) | MNLI-m/mm | Avg |"  # GLUE order
    # std over seeds is the sample std (n - 1): CoLA 50 / 60 -> 55.0±7.1
    # Avg per seed: (88 + 83 + 50) / 3 = 73.67 and (86 + 85 + 60) / 3 = 77.0 -> 75.3±2.4
    assert table[2] == "| bert | 55.0±7.1 | 89.0±1.4/85.0±1.4 | 85.0±1.4/83.0±1.4 | 75.3±2.4 |"


def test_submission_files(tmp_path):
    text = format_predictions(TASKS["stsb"], ["0", "1", "2"], [5.7, -0.2, 2.3456])
    assert text == "index\tprediction\n0\t5.000\n1\t0.000\n2\t2.346\n"  # clipped to 0..5
    text = format_predictions(TASKS["rte"], ["0", "1"], ["entailment", "not_entailment"])
    assert text.splitlines() == ["index\tprediction", "0\tentailment", "1\tnot_entailment"]
    with pytest.raises(ValueError, match="2 test rows but 1 predictions"):
        format_predictions(TASKS["rte"], ["0", "1"], ["entailment"])
    (tmp_path / "RTE.tsv").write_text(text)
    (tmp_path / "CoLA.tsv").write_text("index\tprediction\n0\t1\n")
    assert write_zip(tmp_path, tmp_path / "submission.zip") == ["CoLA.tsv", "RTE.tsv"]
    with zipfile.ZipFile(tmp_path / "submission.zip") as z:
        assert z.namelist() == ["CoLA.tsv", "RTE.tsv"] and z.read("RTE.tsv").decode() == text


def test_overrides():
    got = parse_overrides("rte.lr=3e-5,cola.epochs=5,batch_size=16,rte.batch_size=8")
    assert got["rte"] == {"lr": 3e-5, "batch_size": 8}
    assert got["cola"] == {"epochs": 5.0, "batch_size": 16} and got["sst2"] == {"batch_size": 16}
    assert parse_overrides("") == {name: {} for name in TASKS}
    for bad, message in (("rte.lr", "write task.key=value"), ("rtx.lr=1", "unknown task 'rtx'"),
                         ("rte.speed=2", "unknown setting 'speed'"),
                         ("rte.epochs=many", "'many' is not a float")):
        with pytest.raises(ValueError, match=message):
            parse_overrides(bad)


# --- the real files --------------------------------------------------------------------------

@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data/glue")
def test_real_glue_data():
    """Counts from DATA.md: CoLA 8,551 / 1,043 / 1,063; STS-B 5,749 / 1,500 / 1,379; RTE
    2,490 / 277 / 3,000; WNLI 635 / 71 / 146; SST-2 67,349 / 872; QNLI dev 5,463."""
    found = find_tasks(DATA)
    assert {k for k, v in found.items() if not v} == {"cola", "sst2", "stsb", "rte", "wnli"}
    assert found["qnli"] == "no QNLI/train.tsv"
    counts = {"cola": (8551, 1043, 1063), "stsb": (5749, 1500, 1379), "rte": (2490, 277, 3000),
              "wnli": (635, 71, 146), "sst2": (67349, 872, 1821)}
    for name, (n_train, n_dev, n_test) in counts.items():
        spec = TASKS[name]
        train, _ = read_split(spec, DATA, spec.train)
        dev, _ = read_split(spec, DATA, spec.dev["dev"])
        test, ids = read_split(spec, DATA, spec.test[spec.title], test=True)
        assert (len(train), len(dev), len(test)) == (n_train, n_dev, n_test), name
        assert ids[:2] == ["0", "1"] and ids[-1] == str(n_test - 1)
        labels = {r.label for r in train}
        assert labels == set(spec.labels) if spec.labels else all(
            0 <= float(x) <= 5 for x in labels)
    qnli, _ = read_split(TASKS["qnli"], DATA, TASKS["qnli"].dev["dev"])
    assert len(qnli) == 5463 and {r.label for r in qnli} == {"entailment", "not_entailment"}
