"""sentencepiece checkpoints (DeBERTa-v3 spm.model, XLM-R sentencepiece.bpe.model) loaded as
published, without tokenizer.json, against three oracles on the shared corpus:

- "slow": the sentencepiece processor itself, which transformers' slow tokenizers run
  (DeBERTa: [CLS] + pieces + [SEP]; XLM-R: fairseq ids = sentencepiece id + 1, <unk> = 3);
- transformers' converters (DebertaV2Converter / XLMRobertaConverter, the fast tokenizers of
  transformers 4): ids, offsets and word ids;
- transformers' DebertaV2TokenizerFast / XLMRobertaTokenizerFast as installed (transformers 5
  builds them from the .model itself).

One small Unigram model per layout is trained per session on a slice of the corpus (~5 s).
Skipped without ../shared/data, sentencepiece or transformers.
"""

from __future__ import annotations

import json
import types
import unicodedata
from pathlib import Path

import pytest
import torch

from unmask.tokenizer import Tokenizer

spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")
convert = pytest.importorskip("transformers.convert_slow_tokenizer")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VOCAB = 4000


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")  # DATA.md: some speeches are cp1252


@pytest.fixture(scope="session")
def corpus() -> dict[str, list[str]]:
    """Books and speeches (every 5th file, blank lines kept), SST-2 dev, WNUT-17 dev."""
    if not (DATA / "pretrain_text").is_dir():
        pytest.skip(f"{DATA} is absent (shared data is not part of a user's clone)")
    books = []
    for path in sorted((DATA / "pretrain_text").rglob("*.txt"))[::5]:
        books.extend(_decode(path.read_bytes()).splitlines())
    sst2 = [r.split("\t")[0] for r in (DATA / "sst2" / "dev.tsv").read_text().splitlines()[1:]]
    wnut, words = [], []
    for line in (DATA / "wnut17" / "emerging.dev.conll").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split("\t")[0])
        elif words:
            wnut.append(" ".join(words))
            words = []
    return {"books": books, "sst2": sst2, "wnut": wnut}


def _train(path: Path, lines: list[str], **ids) -> spm.SentencePieceProcessor:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(path), vocab_size=VOCAB,
        model_type="unigram", num_threads=2, minloglevel=2, **ids)
    return spm.SentencePieceProcessor(model_file=f"{path}.model")


def _write(directory: Path, files: dict) -> Path:
    directory.mkdir()
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content))
    return directory


@pytest.fixture(scope="session")
def deberta(tmp_path_factory, corpus):
    """A DeBERTa-v3 directory as published: spm.model with pad=0 [CLS]=1 [SEP]=2 [UNK]=3,
    [MASK] appended after the vocabulary (added_tokens.json), no tokenizer.json."""
    root = tmp_path_factory.mktemp("deberta")
    sp = _train(root / "spm", [t for t in corpus["books"] if t.strip()][:15000],
                pad_id=0, bos_id=1, eos_id=2, unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]",
                eos_piece="[SEP]", unk_piece="[UNK]")
    d = _write(root / "ckpt", {
        "config.json": {"model_type": "deberta-v2", "max_position_embeddings": 512},
        "tokenizer_config.json": {"do_lower_case": False, "vocab_type": "spm"},
        "special_tokens_map.json": {"bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token":
                                    "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                    "cls_token": "[CLS]", "mask_token": "[MASK]"},
        "added_tokens.json": {"[MASK]": VOCAB}})
    (root / "spm.model").rename(d / "spm.model")
    return d, sp


@pytest.fixture(scope="session")
def xlmr(tmp_path_factory, corpus):
    """An XLM-R directory: sentencepiece.bpe.model (a Unigram model despite its name, with
    sentencepiece's default <unk>=0 <s>=1 </s>=2) and the published tokenizer_config."""
    root = tmp_path_factory.mktemp("xlmr")
    sp = _train(root / "sp", [t for t in corpus["books"] if t.strip()][15000:30000])
    d = _write(root / "ckpt", {"tokenizer_config.json": {
        "model_max_length": 512, "tokenizer_class": "XLMRobertaTokenizer",
        "added_tokens_decoder": {str(VOCAB + 1): {"content": "<mask>", "lstrip": True,
                                                  "normalized": False, "rstrip": False,
                                                  "single_word": False, "special": True}}}})
    (root / "sp.model").rename(d / "sentencepiece.bpe.model")
    return d, sp


def _converted(converter, model_file: Path, ids: dict) -> object:
    """transformers' slow->fast conversion (its fast tokenizer in transformers 4)."""
    original = types.SimpleNamespace(vocab_file=str(model_file), split_by_punct=False,
                                     do_lower_case=False, add_prefix_space=True,
                                     convert_tokens_to_ids=ids.__getitem__)
    return converter(original).converted()


def _lines(corpus) -> list[str]:
    return corpus["books"] + corpus["sst2"] + corpus["wnut"]


def _word_ids(hf, n: int) -> list[list[int]]:
    return [[-1 if w is None else w for w in hf.word_ids(i)] for i in range(n)]


def _check_against_converter(ours: Tokenizer, converted, lines: list[str],
                             slow: list[list[int]]) -> list[int]:
    """Ids, offsets and word ids equal the converter's wherever it agrees with sentencepiece;
    returns the lines where it does not."""
    exp = converted.encode_batch(lines)
    differ = [i for i, e in enumerate(exp) if e.ids != slow[i]]
    same = sorted(set(range(len(lines))) - set(differ))
    got = ours.encode_batch([lines[i] for i in same], truncation=False, padding=False)
    assert got.input_ids == [exp[i].ids for i in same]
    assert got.offsets == [exp[i].offsets for i in same]
    assert got.word_ids == [[-1 if w is None else w for w in exp[i].word_ids] for i in same]
    return differ


def _load(directory: Path, hf_class, roles: tuple[str, ...]):
    """unmask's and transformers' tokenizer of `directory`; their role ids 0-3 agree."""
    ours, hf = Tokenizer.from_pretrained(directory), hf_class.from_pretrained(str(directory))
    ids = [getattr(ours, f"{r}_token_id") for r in roles]
    assert ids == [0, 1, 2, 3] == [getattr(hf, f"{r}_token_id") for r in roles]
    return ours, hf


# ------------------------------------------------------------------------------ DeBERTa-v3
def test_deberta_ids_match_sentencepiece_and_transformers(deberta, corpus):
    d, sp = deberta
    ours, hf = _load(d, transformers.DebertaV2TokenizerFast, ("pad", "cls", "sep", "unk"))
    assert ours.mask_token_id == hf.mask_token_id == VOCAB == len(hf) - 1 == ours.vocab_size - 1
    assert ours.model_max_length == 512  # from config.json: DeBERTa names no limit elsewhere
    assert ours.special_ids == set(hf.all_special_ids)

    lines = _lines(corpus)
    got = ours.encode_batch(lines, truncation=False, padding=False).input_ids
    slow = [[1, *ids, 2] for ids in sp.encode(lines)]
    mismatches = [i for i, (a, b) in enumerate(zip(got, slow, strict=True)) if a != b]
    assert not mismatches, f"{len(mismatches)} lines differ, first {lines[mismatches[0]]!r}"
    if transformers.DebertaV2Tokenizer is not transformers.DebertaV2TokenizerFast:  # 4.x
        assert transformers.DebertaV2Tokenizer.from_pretrained(str(d))(lines)["input_ids"] == got

    # transformers 5 builds its fast tokenizer from the .model with NFC where sentencepiece
    # applies its nmt_nfkc character map (NFKC; zero-width spaces and BOMs become spaces):
    # only lines that map changes beyond NFC may differ (a handful per 10k lines).
    fast = hf(lines, return_offsets_mapping=True)
    differ = [i for i, ids in enumerate(fast["input_ids"]) if ids != got[i]]
    assert len(differ) < len(lines) / 1000
    assert all(sp.normalize(lines[i]) != " ".join(unicodedata.normalize("NFC", lines[i]).split())
               for i in differ)
    # Offsets: transformers 5's normaliser (NFC, spaces collapsed, not stripped on the left)
    # is not sentencepiece's; where both normalise a line alike, offsets must be identical.
    # transformers 4's converter, below, is compared on every line.
    theirs, mine = hf.backend_tokenizer.normalizer, ours.backend.normalizer
    same = [i for i in range(len(lines))
            if mine.normalize_str(lines[i]) == theirs.normalize_str(lines[i])]
    assert len(same) > len(lines) * 0.8
    ours_same = ours.encode_batch([lines[i] for i in same], truncation=False, padding=False)
    assert ours_same.offsets == [list(map(tuple, fast["offset_mapping"][i])) for i in same]
    hf_words = _word_ids(fast, len(lines))
    assert ours_same.word_ids == [hf_words[i] for i in same]
    # DebertaV2Converter strips spaces before sentencepiece's character map, which turns a
    # trailing BOM / zero-width space into one more: it then emits an extra "▁" there.
    converted = _converted(convert.DebertaV2Converter, d / "spm.model", {"[CLS]": 1, "[SEP]": 2})
    differ = _check_against_converter(ours, converted, lines, slow)
    assert len(differ) < 10 and all(lines[i].rstrip() != lines[i].rstrip(" \ufeff\u200b")
                                    for i in differ)


def test_deberta_pairs_padding_and_mask_token(deberta, corpus):
    d, sp = deberta
    ours = Tokenizer.from_pretrained(d)
    hf = transformers.DebertaV2TokenizerFast.from_pretrained(str(d))
    a, b = corpus["sst2"][:300], corpus["wnut"][:300]
    pairs = list(zip(a, b, strict=True))
    got = ours.encode_batch(pairs, truncation=False, padding=False)
    slow = [[1, *x, 2, *y, 2] for x, y in zip(sp.encode(a), sp.encode(b), strict=True)]
    assert got.input_ids == slow
    converted = _converted(convert.DebertaV2Converter, d / "spm.model", {"[CLS]": 1, "[SEP]": 2})
    assert got.offsets == [e.offsets for e in converted.encode_batch(pairs)]
    assert got.token_type_ids == [[0] * (len(x) + 2) + [1] * (len(y) + 1)
                                  for x, y in zip(sp.encode(a), sp.encode(b), strict=True)]
    ours_pad = ours.encode_batch(pairs, max_length=64)
    exp = hf(a, b, max_length=64, truncation=True, padding=True, return_tensors="pt",
             return_special_tokens_mask=True)
    assert torch.equal(ours_pad.input_ids, exp["input_ids"])
    assert torch.equal(ours_pad.token_type_ids, exp["token_type_ids"])
    assert torch.equal(ours_pad.attention_mask, exp["attention_mask"].bool())
    assert torch.equal(ours_pad.special_tokens_mask, exp["special_tokens_mask"].bool())

    text = ["The capital of France is [MASK].", "a [MASK] b [MASK]"]
    ids = ours.encode_batch(text, padding=False).input_ids
    assert ids == hf(text)["input_ids"] and ids[0].count(VOCAB) == 1
    assert ours.decode_batch(ids) == hf.batch_decode(ids, skip_special_tokens=True)


# ------------------------------------------------------------------------------ XLM-R
def test_xlmr_ids_match_sentencepiece_and_transformers(xlmr, corpus):
    d, sp = xlmr
    ours, hf = _load(d, transformers.XLMRobertaTokenizerFast, ("cls", "pad", "sep", "unk"))
    assert ours.mask_token_id == hf.mask_token_id == VOCAB + 1 == len(hf) - 1
    assert ours.model_max_length == hf.model_max_length == 512

    lines = _lines(corpus)
    # fairseq's ids: sentencepiece's id + 1, and its <unk>=0 becomes 3
    slow = [[0, *(i + 1 if i else 3 for i in ids), 2] for ids in sp.encode(lines)]
    got = ours.encode_batch(lines, truncation=False, padding=False)
    mismatches = [i for i, (a, b) in enumerate(zip(got.input_ids, slow, strict=True)) if a != b]
    # Two segmentations of equal probability ("al|i|en" / "al|ie|n"): sentencepiece and the
    # tokenizers library break the tie differently (transformers' fast tokenizer as unmask).
    for i in mismatches:
        score = [sum(sp.get_score(max(t - 1, 0)) for t in ids[1:-1])
                 for ids in (got.input_ids[i], slow[i])]
        assert score[0] == pytest.approx(score[1], abs=1e-3), lines[i]
    assert len(mismatches) < len(lines) / 5000
    fast = hf(lines, return_offsets_mapping=True)
    assert got.input_ids == fast["input_ids"]
    assert got.word_ids == _word_ids(fast, len(lines))
    # Offsets: transformers 5 splits on whitespace before Metaspace, so "▁word" starts after
    # its space; transformers 4's converter (as XLM-R's published tokenizer.json) and unmask
    # include the space. Offsets are compared with the converter, below.
    converted = _converted(convert.XLMRobertaConverter, d / "sentencepiece.bpe.model",
                           {"<s>": 0, "</s>": 2})
    assert _check_against_converter(ours, converted, lines, slow) == mismatches

    pairs = list(zip(corpus["sst2"][:200], corpus["wnut"][:200], strict=True))
    got = ours.encode_batch(pairs, max_length=48)
    exp = hf([p[0] for p in pairs], [p[1] for p in pairs], max_length=48, truncation=True,
             padding=True, return_tensors="pt")
    assert torch.equal(got.input_ids, exp["input_ids"])
    assert not got.token_type_ids.any()  # RoBERTa-style: one segment type
    masked = ["The capital of France is <mask>.", "Paris <mask> Berlin"]
    assert ours.encode_batch(masked, padding=False).input_ids == hf(masked)["input_ids"]


# ------------------------------------------------------------------------------ use & errors
def test_a_sentencepiece_tokenizer_drives_a_fill_mask_pipeline(deberta):
    from unmask.config import preset
    from unmask.heads import MaskedLM
    from unmask.pipelines import FillMask

    d, _ = deberta
    tok = Tokenizer.from_pretrained(d)
    torch.manual_seed(0)
    model = MaskedLM(preset("tiny", vocab_size=tok.vocab_size, pad_token_id=tok.pad_token_id))
    fill = FillMask(model.eval(), tok)
    assert fill.max_length == 512
    out = fill("The capital of France is [MASK].", top_k=3)
    assert len(out) == 3 and all(r["token"] not in tok.special_ids for r in out)
    assert all("[MASK]" not in r["sequence"] and r["sequence"].startswith("The capital")
               for r in out)


def test_bad_sentencepiece_files_give_one_clear_line(tmp_path):
    (tmp_path / "spm.model").write_bytes(b"\x0a\xff\xff not a protobuf")
    with pytest.raises(ValueError, match="spm.model is not a sentencepiece model") as e:
        Tokenizer.from_pretrained(tmp_path)
    assert "\n" not in str(e.value)
    bpe = tmp_path / "bpe"
    bpe.mkdir()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world, a little text"] * 50), model_prefix=str(bpe / "m"),
        vocab_size=30, model_type="bpe", minloglevel=2)
    (bpe / "m.model").rename(bpe / "spm.model")
    with pytest.raises(ValueError, match="only Unigram models"):
        Tokenizer.from_pretrained(bpe)


def test_a_hub_id_loads_through_the_hub_cache(deberta, tmp_path, monkeypatch):
    # The DeBERTa directory as huggingface_hub caches a download of it; offline, the hub id
    # resolves (unmask.checkpoints.resolve) to that snapshot.
    from test_hub import hub_cache

    d, _ = deberta
    hub_cache(tmp_path / "hf", "microsoft/deberta-v3-tiny",
              {p.name: p for p in d.iterdir()}, commit="0" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = Tokenizer.from_pretrained("microsoft/deberta-v3-tiny")
    text = ["A hub id, resolved offline.", "The capital of France is [MASK]."]
    assert ours.encode_batch(text, padding=False).input_ids == Tokenizer.from_pretrained(
        d).encode_batch(text, padding=False).input_ids
    assert ours.mask_token_id == VOCAB
    with pytest.raises(FileNotFoundError, match="microsoft/not-cached") as e:
        Tokenizer.from_pretrained("microsoft/not-cached")
    assert "\n" not in str(e.value)
