"""Objectives on packed batches: document boundaries, masked-only decoding, ELECTRA, causal."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmask import masks
from unmask.config import preset
from unmask.corruption import MLMCorruption
from unmask.data import PackedBatches, TokenShards, write_token_shards
from unmask.heads import IGNORE_INDEX, MaskedLM, ReplacedTokenDetector
from unmask.train.layout import to_segments
from unmask.train.objectives import (
    CausalLMObjective,
    ElectraObjective,
    MaskedLMObjective,
    generator_config,
)
from unmask.train.words import continuation_table, word_ids

VOCAB = 50
SPECIALS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    rng = np.random.default_rng(0)
    docs = [rng.integers(5, VOCAB, size=int(n)).tolist() for n in rng.integers(3, 25, size=30)]
    out = tmp_path_factory.mktemp("shards")
    write_token_shards(out, {"train": docs}, vocab_size=VOCAB, special_ids=SPECIALS)
    return next(iter(PackedBatches(TokenShards(out), seq_len=32, batch_size=4)))


def corruption(rate=0.3):
    return MLMCorruption(mask_token_id=4, vocab_size=VOCAB, special_ids=range(5),
                         mask_rate=rate)


def model(cls=MaskedLM):
    torch.manual_seed(0)
    return cls(preset("tiny", vocab_size=VOCAB, hidden_dropout=0.0,
                      attention_dropout=0.0)).eval()


def test_segments_hold_one_document_each_and_keep_every_token(batch):
    seg = to_segments({"input_ids": batch["input_ids"], "doc": batch["document_ids"]},
                      batch["attention_mask"], batch["position_ids"], {"input_ids": 0, "doc": -1})
    real = seg["attention_mask"]
    assert int(real.sum()) == int(batch["attention_mask"].sum())
    docs = seg["doc"]
    assert all(len(set(docs[i][real[i]].tolist())) == 1 for i in range(len(docs)))
    assert bool((seg["input_ids"][:, 0] == 2).all())  # each row starts at its [CLS]
    lengths = real.sum(1)
    assert bool((lengths[1:] >= lengths[:-1]).all())  # sorted: buckets are slices


def test_no_token_attends_across_documents(batch):
    """The MLM loss of a packed batch equals the sum over its documents encoded alone."""
    m = model()
    objective = MaskedLMObjective(m, corruption())
    inputs, counts = objective.prepare(batch)
    with torch.no_grad():
        terms, stats = objective(**inputs)
    assert float(stats[1]) == float(counts[0]) > 0  # decoder ran on the masked rows only
    total = 0.0
    with torch.no_grad():
        for i in range(len(inputs["input_ids"])):
            n = int(inputs["attention_mask"][i].sum())
            alone = m(inputs["input_ids"][i:i + 1, :n], labels=inputs["labels"][i:i + 1, :n])
            k = int((inputs["labels"][i, :n] != IGNORE_INDEX).sum())
            total += float(alone.loss) * k if k else 0.0
    assert float(terms[0]) == pytest.approx(total, rel=1e-4)


@pytest.mark.parametrize("masking", ["whole_word", "span"])
def test_word_masking_takes_whole_words_and_never_crosses_documents(batch, masking):
    vocab = {f"w{i}": i for i in range(VOCAB)}
    vocab.update({f"##c{i}": i for i in range(5, VOCAB, 3)})  # every third id continues
    vocab = {t: i for t, i in vocab.items() if not (t.startswith("w") and i % 3 == 2 and i > 4)}
    continues = continuation_table(vocab, VOCAB)
    objective = MaskedLMObjective(model(), corruption(0.4), masking, continues)
    _, labels = objective.corrupt(batch)
    words = word_ids(batch["input_ids"], batch["special_tokens_mask"], continues)
    chosen = labels != IGNORE_INDEX
    assert bool(chosen.any())
    for w in torch.unique(words[words >= 0]):
        for row in range(len(words)):
            pieces = chosen[row][words[row] == w]
            assert len(pieces) == 0 or bool(pieces.all() == pieces.any())  # all or none
    assert not bool(chosen[batch["special_tokens_mask"]].any())  # [CLS]/[SEP] split documents


def test_electra_shares_embeddings_and_weighs_the_discriminator_50(batch):
    disc = model(ReplacedTokenDetector)
    gen = MaskedLM(generator_config(disc.config))
    objective = ElectraObjective(gen, disc, corruption())
    assert gen.encoder.embeddings.word is disc.encoder.embeddings.word
    assert gen.config.hidden_size == disc.config.hidden_size // 4
    inputs, counts = objective.prepare(batch)
    terms, stats = objective(**inputs)
    names = dict(zip(objective.stat_names, stats.tolist(), strict=True))
    assert names["tokens"] == float(counts[1]) == float(batch["attention_mask"].sum())
    assert names["replaced"] <= names["masked"]  # a sample equal to the original is "real"
    metrics = objective.metrics(names)
    assert metrics["loss"] == pytest.approx(metrics["mlm_loss"] + 50 * metrics["disc_loss"])
    terms.sum().backward()  # no gradient reaches the generator through its sample
    assert gen.encoder.layers[0].attn.qkv.weight.grad is not None


def test_causal_objective_never_looks_ahead(batch):
    m = model()
    objective = CausalLMObjective(m)
    inputs, counts = objective.prepare(batch)
    real = inputs["attention_mask"]
    assert float(counts[0]) == float((real[:, 1:]).sum())  # every next token, per segment
    changed = {k: v.clone() for k, v in inputs.items()}
    row = int(real.sum(1).argmax())
    last = int(real[row].sum()) - 1
    changed["input_ids"][row, last] = 7  # change the last token of one segment
    causal = masks.causal(real.shape[1])
    with torch.no_grad():
        h1, h2 = (m.encoder(x["input_ids"], attention_mask=real, mask=causal,
                            backend="unpadded").last_hidden_state for x in (inputs, changed))
    assert torch.allclose(h1[row, :last], h2[row, :last], atol=1e-6)
    assert not torch.allclose(h1[row, last], h2[row, last])
