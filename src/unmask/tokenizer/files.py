"""A checkpoint's tokenizer files -> a `tokenizers.Tokenizer`, the way transformers reads them.

Looked for in this order: tokenizer.json; vocab.txt (BERT WordPiece); vocab.json + merges.txt
(RoBERTa byte-level BPE); spm.model (DeBERTa-v2/v3) or sentencepiece.bpe.model (XLM-R), both
sentencepiece Unigram models converted at load time (see unmask.tokenizer.spm). Options and
special tokens come from tokenizer_config.json, special_tokens_map.json and added_tokens.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tokenizers
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors

from unmask.tokenizer.spm import SPM_FILES, from_sentencepiece

ROLES = ("cls", "sep", "pad", "mask", "unk")
BERT_SPECIALS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
# RoBERTa's order: <s>=0 <pad>=1 </s>=2 <unk>=3, and <mask> last-added.
ROBERTA_SPECIALS = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
# transformers writes int(1e30) as model_max_length when a checkpoint has no limit.
_NO_LIMIT = 10**9
_OPTIONS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "add_prefix_space",
            "trim_offsets", "split_by_punct")
# Every file a tokenizer may consist of: what a saved model copies beside its weights.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt", "spm.model",
                   "sentencepiece.bpe.model")
WHAT_A_TOKENIZER_IS = (
    "a tokenizer path is a checkpoint directory holding tokenizer.json, vocab.txt (BERT), "
    "vocab.json + merges.txt (RoBERTa), spm.model (DeBERTa) or sentencepiece.bpe.model (XLM-R), "
    "or a tokenizer.json file"
)


def read_json(path: Path) -> Any:
    """The JSON in `path`; ValueError naming the file when it is not valid UTF-8 JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or re-download it") from None


def read_tokenizer_json(path: Path) -> tokenizers.Tokenizer:
    """tokenizers.Tokenizer.from_file with one clear line for a file that is not one."""
    try:
        return tokenizers.Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 (tokenizers raises a bare Exception)
        reason = " ".join(str(e).split())[:120]
        raise ValueError(
            f"{path} is not a tokenizer.json ({reason}); {WHAT_A_TOKENIZER_IS}") from None


def _content(value: Any) -> str | None:
    # transformers writes special tokens as "[CLS]" or as {"content": "[CLS]", "lstrip": ...}.
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


@dataclass
class CheckpointConfig:
    """What tokenizer_config.json, special_tokens_map.json and added_tokens.json say."""

    special_tokens: dict[str, str] = field(default_factory=dict)  # role -> token
    model_max_length: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # do_lower_case, add_prefix_space, ...
    added_tokens: list[AddedToken] = field(default_factory=list)  # in id order


def read_config(directory: Path) -> CheckpointConfig:
    def load(name: str) -> dict:
        data = read_json(directory / name) if (directory / name).is_file() else {}
        if not isinstance(data, dict):
            raise ValueError(  # noqa: TRY004 (bad file content, not a bad argument)
                f"{directory / name} holds {type(data).__name__}, not a JSON object")
        return data

    tok_config, special_map = load("tokenizer_config.json"), load("special_tokens_map.json")
    config = CheckpointConfig(options={k: tok_config[k] for k in _OPTIONS if k in tok_config})
    # As in transformers, special_tokens_map.json overrides tokenizer_config.json.
    config.special_tokens = {role: token for source in (tok_config, special_map) for role in ROLES
                             if (token := _content(source.get(f"{role}_token"))) is not None}
    limit = tok_config.get("model_max_length")
    if isinstance(limit, (int, float)) and 0 < limit < _NO_LIMIT:
        config.model_max_length = int(limit)
    decoder = tok_config.get("added_tokens_decoder") or {}
    # added_tokens.json (older checkpoints, e.g. DeBERTa-v3's [MASK]): {token: id}
    decoder.update({str(i): {"content": t} for t, i in load("added_tokens.json").items()
                    if str(i) not in decoder})
    for _, tok in sorted(decoder.items(), key=lambda kv: int(kv[0])):
        content = _content(tok)
        if content is None:
            continue
        tok = tok if isinstance(tok, dict) else {}
        special = bool(tok.get("special", content in config.special_tokens.values()))
        flags = {k: bool(tok.get(k, False)) for k in ("lstrip", "rstrip", "single_word")}
        config.added_tokens.append(AddedToken(
            content, special=special, normalized=bool(tok.get("normalized", not special)), **flags))
    return config


def from_directory(directory: Path, config: CheckpointConfig) -> tuple[tokenizers.Tokenizer, dict]:
    """The backend built from the first tokenizer file found, and the role tokens its format
    always has (a sentencepiece vocabulary lacks DeBERTa's [MASK]: transformers adds it).
    Fills config.model_max_length from config.json for DeBERTa, which names no limit."""
    options, named = config.options, config.special_tokens
    if (directory / "tokenizer.json").is_file():
        return read_tokenizer_json(directory / "tokenizer.json"), {}
    if (directory / "vocab.txt").is_file():
        return wordpiece(directory / "vocab.txt", {**BERT_SPECIALS, **named}, options), {}
    if (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file():
        return byte_level_bpe(directory / "vocab.json", directory / "merges.txt",
                              {**ROBERTA_SPECIALS, **named}, options), {}
    for name, layout in SPM_FILES.items():
        if (directory / name).is_file():
            deberta = layout == "deberta"
            roles = {**(BERT_SPECIALS if deberta else ROBERTA_SPECIALS), **named}
            backend = from_sentencepiece(
                directory / name, layout, do_lower_case=options.get("do_lower_case", False),
                split_by_punct=options.get("split_by_punct", False))
            ids = {t: backend.token_to_id(t) for t in (roles["cls"], roles["sep"])}
            if None not in ids.values():  # XLM-R: <s> A </s></s> B </s>, all type 0
                backend.post_processor = bert_template(roles["cls"], roles["sep"], ids,
                                                       pair_type_id=int(deberta),
                                                       roberta_pair=not deberta)
            if deberta and config.model_max_length is None:
                # DeBERTa-v3 names no limit; its positions (no offset) are the limit.
                path = directory / "config.json"
                model = read_json(path) if path.is_file() else {}
                config.model_max_length = model.get("max_position_embeddings")
            return backend, roles
    present = sorted(p.name for p in directory.iterdir())[:20]
    raise FileNotFoundError(f"no tokenizer files in {directory} (found {present}); "
                            f"{WHAT_A_TOKENIZER_IS}")


def bert_template(cls_token: str, sep_token: str, ids: dict[str, int], pair_type_id: int = 1,
                  roberta_pair: bool = False) -> processors.TemplateProcessing:
    """[CLS] A [SEP] and [CLS] A [SEP] B [SEP] (B typed pair_type_id); roberta_pair doubles the
    middle separator as RoBERTa does (<s> A </s></s> B </s>)."""
    b = pair_type_id
    middle = f"{sep_token}:0 {sep_token}:{b}" if roberta_pair else f"{sep_token}:0"
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {middle} $B:{b} {sep_token}:{b}",
        special_tokens=[(cls_token, ids[cls_token]), (sep_token, ids[sep_token])],
    )


def wordpiece(vocab_path: Path, roles: dict[str, str], options: dict) -> tokenizers.Tokenizer:
    """BERT's WordPiece pipeline from a vocab.txt (one token per line, id = line number).

    Defaults are bert-base-uncased's: lower-case, strip accents when lower-casing, split CJK.
    """
    # As transformers' load_vocab: strip only the newline, the last duplicate wins.
    with open(vocab_path, encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): index for index, line in enumerate(f)}
    if roles["unk"] not in vocab:
        raise ValueError(f"{vocab_path} has no unknown token {roles['unk']!r}; "
                         "pass special_tokens={'unk': ...}")
    backend = tokenizers.Tokenizer(
        models.WordPiece(vocab, unk_token=roles["unk"], max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=options.get("tokenize_chinese_chars", True),
        strip_accents=options.get("strip_accents"),
        lowercase=options.get("do_lower_case", True),
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    if roles["cls"] in vocab and roles["sep"] in vocab:
        backend.post_processor = bert_template(roles["cls"], roles["sep"], vocab,
                                               roberta_pair=roles["cls"] == "<s>")
    return backend


def byte_level_bpe(vocab_path: Path, merges_path: Path, roles: dict[str, str],
                   options: dict) -> tokenizers.Tokenizer:
    """RoBERTa's byte-level BPE from vocab.json + merges.txt: <s> A </s>, <s> A </s></s> B </s>."""
    vocab, merges = models.BPE.read_file(str(vocab_path), str(merges_path))
    # No unk_token: byte-level BPE can spell every string from its 256 byte symbols.
    backend = tokenizers.Tokenizer(models.BPE(vocab, merges, continuing_subword_prefix="",
                                              end_of_word_suffix="", fuse_unk=False))
    add_prefix_space = options.get("add_prefix_space", False)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    if roles["cls"] in vocab and roles["sep"] in vocab:
        backend.post_processor = processors.RobertaProcessing(
            (roles["sep"], vocab[roles["sep"]]), (roles["cls"], vocab[roles["cls"]]),
            trim_offsets=options.get("trim_offsets", True), add_prefix_space=add_prefix_space)
    return backend
