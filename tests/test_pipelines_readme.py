"""README's "five classic examples" run exactly as written, offline.

Each hub id in that section is put into a hub cache (tests/test_hub.py's layout) holding a model
of the same family and head: tiny random BERT / DistilBERT checkpoints for fill-mask, NER,
sentiment and QA (their outputs' shape is checked, not their values), and the real
all-MiniLM-L6-v2 for similarity (its printed value is checked against the README's comment).
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from test_hub import _files, hub_cache
from test_pipelines_assets import MINILM, TOKENIZER_FILES, tiny

transformers = pytest.importorskip("transformers")
README = Path(__file__).resolve().parents[1] / "README.md"
TITLE = "## The five classic examples"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(TITLE)
    return text[start: text.index("\n## ", start + 1)]


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", section(), flags=re.DOTALL)


def tiny_distilbert(directory: Path, head: str) -> Path:
    import shutil

    import torch

    torch.manual_seed(0)
    labels = {"id2label": {0: "NEGATIVE", 1: "POSITIVE"},
              "label2id": {"NEGATIVE": 0, "POSITIVE": 1}} if head == "classify" else {}
    cfg = transformers.DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2,
                                        hidden_dim=64, max_position_embeddings=64, **labels)
    cls = (transformers.DistilBertForSequenceClassification if head == "classify"
           else transformers.DistilBertForQuestionAnswering)
    cls(cfg).eval().save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(MINILM / name, directory / name)
    return directory


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    home = root / "hf_home"
    models = {
        "google-bert/bert-base-uncased": tiny(root / "mlm", "mlm"),
        "dslim/bert-base-NER": tiny(root / "ner", "ner"),
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english":
            tiny_distilbert(root / "sst2", "classify"),
        "distilbert/distilbert-base-cased-distilled-squad": tiny_distilbert(root / "qa", "qa"),
        "sentence-transformers/all-MiniLM-L6-v2": MINILM,
    }
    for i, (repo, directory) in enumerate(models.items()):
        hub_cache(home, repo, _files(directory), f"{i}" * 40, link_blobs=True)
    return home


@pytest.fixture
def offline(hub, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(hub))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def run(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})  # noqa: S102 (the README, on purpose)
    return out.getvalue().strip()


def test_the_section_has_the_five_examples():
    assert len(blocks("python")) == 5
    assert len(blocks("bash").pop().strip().splitlines()) == 5


def test_python_examples_run_as_written(offline):
    fill, ner, sentiment, similarity, qa = (run(code) for code in blocks("python"))
    proposals = ast.literal_eval(fill)
    assert len(proposals) == 3
    assert set(proposals[0]) == {"score", "token", "token_str", "sequence"}
    for ent in ast.literal_eval(ner):
        assert set(ent) == {"entity_group", "score", "word", "start", "end"}
    (label,) = ast.literal_eval(sentiment)
    assert set(label) == {"label", "score"} and label["label"] in ("NEGATIVE", "POSITIVE")
    documented = re.search(r"\n# (\S+)\n", blocks("python")[3]).group(1)
    assert similarity == documented  # the real MiniLM: the README's number
    answer = ast.literal_eval(qa)
    assert set(answer) == {"score", "start", "end", "answer"}


def test_cli_examples_run_as_written(offline, capsys):
    from unmask.cli import main

    for line in blocks("bash")[-1].strip().splitlines():
        argv = shlex.split(line)
        assert argv[0] == "unmask"
        assert main(argv[1:]) in (0, None), line
        assert capsys.readouterr().out.strip(), line
