"""Models by hub id, offline: a hub cache written here in huggingface_hub's own layout.

models--org--name/refs/<branch> holds a commit hash, snapshots/<commit>/<file> links to
blobs/<sha256>. With HF_HOME at tmp_path and HF_HUB_OFFLINE=1, huggingface_hub answers from
that cache alone, as on a machine that downloaded the model before (no network needed).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch

from test_pipelines_assets import MINILM, tiny
from unmask.checkpoints import load, resolve, save
from unmask.cli import main

REPO = "org/tiny-bert"


def hub_cache(home: Path, repo: str, files: dict[str, Path], commit: str,
              ref: str | None = "main", link_blobs: bool = False) -> Path:
    """Put `files` (name in the repo -> file here) into the hub cache under `home` as
    huggingface_hub stores a download of `repo` at `commit`; `ref` (a branch or tag) points
    at it. link_blobs: blobs are symlinks to the files (no copy of a large model).
    Returns the snapshot folder."""
    repo_dir = home / "hub" / ("models--" + repo.replace("/", "--"))
    (repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot = repo_dir / "snapshots" / commit
    for name, source in files.items():
        data = source.read_bytes()
        blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
        if not blob.exists():
            if link_blobs:
                blob.symlink_to(source.resolve())
            else:
                blob.write_bytes(data)
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blob, target.parent))
    if ref is not None:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes
    return snapshot


def _files(directory: Path) -> dict[str, Path]:
    return {str(p.relative_to(directory)): p for p in sorted(directory.rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    return tiny(tmp_path_factory.mktemp("tiny-mlm"), "mlm")


def test_pipeline_by_hub_id_from_the_cache(offline_home, tiny_mlm):
    from unmask import pipeline

    snapshot = hub_cache(offline_home, REPO, _files(tiny_mlm), "a" * 40)
    assert resolve(REPO) == snapshot
    text = "Paris is the [MASK] of France."
    by_id = pipeline("fill-mask", REPO)(text)
    by_path = pipeline("fill-mask", tiny_mlm)(text)
    assert [p["token_str"] for p in by_id] == [p["token_str"] for p in by_path]
    assert [p["score"] for p in by_id] == pytest.approx([p["score"] for p in by_path], abs=1e-6)


def test_cli_fill_by_hub_id(offline_home, tiny_mlm, capsys):
    hub_cache(offline_home, REPO, _files(tiny_mlm), "a" * 40)
    assert main(["fill", "-m", REPO, "--json", "--dtype", "float32",
                 "Paris is the [MASK] of France."]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out[0]) == 5 and all("token_str" in p for p in out[0])


def test_revision_picks_a_branch_or_a_commit(offline_home, tiny_mlm, tmp_path):
    """refs/main and refs/v2 point at two commits with different weights."""
    hub_cache(offline_home, REPO, _files(tiny_mlm), "a" * 40)
    other = load(tiny_mlm)
    with torch.no_grad():
        other.encoder.embeddings.word.weight.mul_(2.0)
    save(other, tmp_path / "v2", format="hf")
    v2 = {**_files(tiny_mlm), **_files(tmp_path / "v2")}
    hub_cache(offline_home, REPO, v2, "b" * 40, ref="v2")

    def word(m):
        return m.encoder.embeddings.word.weight

    assert torch.equal(word(load(REPO)), word(load(tiny_mlm)))
    assert torch.equal(word(load(REPO, revision="v2")), word(other))
    assert torch.equal(word(load(REPO, revision="b" * 40)), word(other))
    with pytest.raises(FileNotFoundError, match="revision 'v3'.*not in the hub cache"):
        load(REPO, revision="v3")


def test_every_model_command_takes_the_revision(offline_home, tiny_mlm, tmp_path, capsys):
    """--revision reaches the hub lookup of the use, finetune and glue commands and the
    tokenizer: a revision the cache lacks is one error line naming it, not the main branch."""
    from unmask.tokenizer import Tokenizer

    hub_cache(offline_home, REPO, _files(tiny_mlm), "a" * 40)
    hub_cache(offline_home, REPO, _files(tiny_mlm), "b" * 40, ref="v2")
    assert Tokenizer.from_pretrained(REPO, revision="v2").vocab_size == \
        Tokenizer.from_pretrained(tiny_mlm).vocab_size
    with pytest.raises(FileNotFoundError, match="revision 'v3'"):
        Tokenizer.from_pretrained(REPO, revision="v3")
    text = "Paris is the [MASK] of France."
    assert main(["fill", "-m", REPO, "--revision", "v2", "--json", text]) == 0
    capsys.readouterr()
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\na fine film\t1\na dull film\t0\n")
    for argv in (["fill", "-m", REPO, text],
                 ["finetune", "classify", "--model", REPO, "--train", str(train), "--dev",
                  str(train), "--out", str(tmp_path / "ft")],
                 ["glue", "--model", REPO, "--data", str(tmp_path), "--out",
                  str(tmp_path / "glue")]):
        try:
            code = main([*argv, "--revision", "v3"])
        except SystemExit as exit_info:
            code = exit_info.code
        err = capsys.readouterr().err + (code if isinstance(code, str) else "")
        assert code not in (0, None) and "revision 'v3'" in err, (argv, err)


def test_uncached_id_offline_fails_fast_with_what_to_do(offline_home):
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as err:
        resolve("someone/some-bert")
    assert time.monotonic() - start < 5  # offline: no network attempt, no retries
    message = str(err.value)
    assert "\n" not in message
    for part in ("'someone/some-bert'", "not in the hub cache", str(offline_home / "hub"),
                 "HF_HUB_OFFLINE", "huggingface.co/someone/some-bert"):
        assert part in message


def test_cli_says_what_to_do_for_an_uncached_id(offline_home):
    with pytest.raises(SystemExit, match="error: 'someone/some-bert'.*not in the hub cache"):
        main(["fill", "-m", "someone/some-bert", "a [MASK] b"])


def test_hf_hub_cache_overrides_hf_home(offline_home, tiny_mlm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere" / "hub"))
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        resolve(REPO)
    snapshot = hub_cache(tmp_path / "elsewhere", REPO, _files(tiny_mlm), "c" * 40)
    assert resolve(REPO) == snapshot


def test_paths_are_never_hub_ids(offline_home, tmp_path):
    for name in ("./no-such-dir", str(tmp_path / "missing"), "a/b/c", tmp_path / "x"):
        with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
            resolve(name)


def test_real_sentence_transformers_model_by_id(offline_home):
    """all-MiniLM-L6-v2 under its hub id: the same embeddings as from its directory."""
    from unmask import pipeline

    repo = "sentence-transformers/all-MiniLM-L6-v2"
    hub_cache(offline_home, repo, _files(MINILM), "d" * 40, link_blobs=True)
    texts = ["A man is eating food.", "The cat sits on the mat."]
    by_id = pipeline("embed", repo, dtype="float32")(texts)
    by_path = pipeline("embed", MINILM, dtype="float32")(texts)
    assert torch.equal(torch.as_tensor(by_id), torch.as_tensor(by_path))


def test_pipeline_takes_the_pickle_opt_in(tiny_mlm, tmp_path, offline_home):
    """pipeline(..., allow_pickle=True) reaches load (it raised TypeError); by path and by id."""
    from unmask import pipeline
    from unmask.checkpoints import read_weights

    old = tmp_path / "old"
    old.mkdir()
    for name, path in _files(tiny_mlm).items():
        if name != "model.safetensors":
            (old / name).write_bytes(path.read_bytes())
    torch.save(read_weights(tiny_mlm), old / "pytorch_model.bin")
    text = "Paris is the [MASK] of France."
    with pytest.raises(ValueError, match="allow_pickle=True"):
        pipeline("fill-mask", old)
    expected = pipeline("fill-mask", tiny_mlm)(text)
    assert pipeline("fill-mask", old, allow_pickle=True)(text) == expected
    hub_cache(offline_home, REPO, _files(old), "e" * 40)
    assert pipeline("fill-mask", REPO, allow_pickle=True)(text) == expected
