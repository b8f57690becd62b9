"""Corpus -> token shards -> packed batches with document boundaries.

    from unmask.data import Corpus, prepare_shards, TokenShards, PackedBatches

    prepare_shards("corpus/", tokenizer, "shards/", validation=0.01)    # once
    batches = PackedBatches(TokenShards("shards/", "train"), seq_len=128, batch_size=32)
    for batch in batches: ...        # dict of (B, L) tensors; state_dict() resumes exactly

corpus.py reads raw text (txt / jsonl / gz, UTF-8 else cp1252 with a warning), shards.py
tokenises it into memory-mapped uint16/uint32 shards, packing.py fills fixed-length rows.
"""

from unmask.data.corpus import Corpus, DecodingWarning, decode_bytes, find_files
from unmask.data.packing import (
    PackedBatches,
    PackingPlan,
    PackingStats,
    cu_seqlens_from_document_ids,
    plan_rows,
)
from unmask.data.shards import (
    TokenShards,
    prepare_shards,
    token_dtype,
    train_tokenizer,
    write_token_shards,
)

__all__ = [
    "Corpus",
    "DecodingWarning",
    "PackedBatches",
    "PackingPlan",
    "PackingStats",
    "TokenShards",
    "cu_seqlens_from_document_ids",
    "decode_bytes",
    "find_files",
    "plan_rows",
    "prepare_shards",
    "token_dtype",
    "train_tokenizer",
    "write_token_shards",
]
