"""sentencepiece Unigram models (DeBERTa-v2/v3 `spm.model`, XLM-R `sentencepiece.bpe.model`)
-> a `tokenizers.Tokenizer`, built at load time as transformers' convert_slow_tokenizer does
(DebertaV2Converter, XLMRobertaConverter), so ids and offsets equal both its sentencepiece
("slow") and its `tokenizers` ("fast") tokenizer.

The .model file is a protobuf (sentencepiece's ModelProto); reading it needs the optional
extra `unmask[sentencepiece]` (the sentencepiece package for its bundled schema, and protobuf).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers

# The file name says the layout, as in transformers' VOCAB_FILES_NAMES.
SPM_FILES = {"spm.model": "deberta", "sentencepiece.bpe.model": "xlm-roberta"}
_CONTROL, _USER_DEFINED = 3, 4  # sentencepiece piece types
_UNIGRAM = 1  # trainer_spec.model_type


def read_model(path: Path):
    """Parse a sentencepiece .model file into its ModelProto (pieces, trainer, normalizer)."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:  # sentencepiece absent, or protobuf (which its schema imports)
        raise OSError(
            f"reading {path} needs the sentencepiece and protobuf packages ({e}); "
            "pip install 'unmask[sentencepiece]', or convert it to tokenizer.json with transformers"
        ) from None
    from google.protobuf.message import DecodeError

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except DecodeError as e:
        raise ValueError(f"{path} is not a sentencepiece model ({e})") from None
    if not proto.pieces:
        raise ValueError(f"{path} is not a sentencepiece model (it has no pieces)")
    if proto.trainer_spec.model_type != _UNIGRAM:
        raise ValueError(
            f"{path} is a sentencepiece model of type {proto.trainer_spec.model_type}; only "
            "Unigram models (DeBERTa-v3, XLM-R) are read: convert it to tokenizer.json first"
        )
    return proto


def from_sentencepiece(
    path: Path,
    layout: Literal["deberta", "xlm-roberta"],
    do_lower_case: bool = False,
    split_by_punct: bool = False,
) -> tokenizers.Tokenizer:
    """A Unigram `tokenizers.Tokenizer` equal to transformers' conversion of the .model file,
    without a post-processor (unmask.tokenizer.files adds the [CLS] / <s> template).

    deberta: the sentencepiece ids as they are (the mask token comes from the checkpoint's
    special tokens). xlm-roberta: fairseq's ids, <s>=0 <pad>=1 </s>=2 <unk>=3, every other
    piece one above its sentencepiece id, <mask> last.
    """
    proto = read_model(path)
    pieces = [(p.piece, p.score) for p in proto.pieces]
    charsmap = proto.normalizer_spec.precompiled_charsmap
    precompiled = [normalizers.Precompiled(charsmap)] if charsmap else []
    if layout == "xlm-roberta":
        fairseq = [(t, 0.0) for t in ("<s>", "<pad>", "</s>", "<unk>")]
        vocab = fairseq + pieces[3:] + [("<mask>", 0.0)]
        backend = tokenizers.Tokenizer(models.Unigram(vocab, unk_id=3, byte_fallback=False))
        steps = [*precompiled, normalizers.Strip(left=False, right=True),
                 normalizers.Replace(Regex(" {2,}"), "▁")]
        split = None
    else:
        unk_id = proto.trainer_spec.unk_id
        backend = tokenizers.Tokenizer(models.Unigram(pieces, unk_id=unk_id, byte_fallback=False))
        # sentencepiece strips and collapses spaces after its character map, which may map
        # a character to a space (a trailing BOM or zero-width space): DebertaV2Converter's
        # Strip() before the map keeps those, this order does not.
        spaces = [normalizers.Replace(Regex(r"\A +| +\z"), ""),
                  normalizers.Replace(Regex(" {2,}"), " ")]
        steps = [*([normalizers.Lowercase()] if do_lower_case else []), *precompiled,
                 *(spaces if proto.normalizer_spec.remove_extra_whitespaces else [])]
        # DeBERTa's converter wraps Metaspace in a Sequence, with or without punctuation splits.
        split = [pre_tokenizers.Punctuation(behavior="isolated")] if split_by_punct else []
    # Control pieces ([CLS], <s>, ...) and user-defined ones are never split; control = special.
    backend.add_tokens([
        AddedToken(p.piece, normalized=False, special=p.type == _CONTROL)
        for p in proto.pieces if p.type in (_CONTROL, _USER_DEFINED)
    ])
    backend.normalizer = normalizers.Sequence(steps)
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.pre_tokenizer = (metaspace if split is None
                             else pre_tokenizers.Sequence([*split, metaspace]))
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return backend
