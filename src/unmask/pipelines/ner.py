"""Named-entity recognition: token labels grouped into entities with exact character spans.

Output as transformers' token-classification pipeline: aggregation "none" gives one
{"entity", "score", "index", "word", "start", "end"} per token; "simple", "first", "average"
and "max" give {"entity_group", "score", "word", "start", "end"} per entity, grouped the same
way transformers does (B-/I- tags, words kept whole by the last three). Labels "O" are left
out. Differences, on purpose:
  - words come from the tokenizer's word ids, not from guessing at "##" prefixes or spaces,
    so "first" / "average" / "max" work with any tokenizer (WordPiece, BPE, Unigram);
  - "word" is the exact text of the span, text[start:end] (transformers gives the detokenised,
    possibly lower-cased tokens);
  - long texts are split into overlapping windows and each token takes its scores from the
    window where it sits furthest from an edge (most context), before grouping, so entities
    never straddle or repeat across windows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unmask.pipelines.base import Batch, Labelled, as_list

AGGREGATIONS = ("none", "simple", "first", "average", "max")


class NER(Labelled):
    """ner(texts, aggregation="simple", ignore_labels=("O",)) -> per text a list of entities.

    aggregation_strategy is transformers' name for aggregation, accepted in both places it
    takes it: pipeline("ner", model, aggregation_strategy="first") sets the default of every
    call, ner(texts, aggregation_strategy="max") one call's. The default is "simple" (entities),
    where transformers' is "none" (one entry per token).
    """

    task = "token_classification"

    def __init__(self, *args, aggregation_strategy: str = "simple", **kwargs):
        super().__init__(*args, **kwargs)
        self.aggregation = _check_aggregation(aggregation_strategy)

    def __call__(self, inputs: str | Sequence[str], aggregation: str | None = None,
                 ignore_labels: Sequence[str] = ("O",), *,
                 aggregation_strategy: str | None = None):
        if None not in (aggregation, aggregation_strategy) and aggregation != aggregation_strategy:
            raise ValueError(f"aggregation={aggregation!r} and aggregation_strategy="
                             f"{aggregation_strategy!r} disagree: give one of them")
        aggregation = _check_aggregation(aggregation or aggregation_strategy or self.aggregation)
        texts, single = as_list(inputs)
        full = self.tokens(texts, truncation=False)
        windows = self.tokens(texts, max_length=self.max_length, return_overflowing=True,
                              stride=self.stride)

        def fn(batch: Batch) -> list[np.ndarray]:
            logits = self.model.head(self.encode(batch)).float()  # (B, L, C)
            probs = logits.softmax(-1).cpu().numpy()
            return [p[:n] for p, n in zip(probs, batch.lengths)]

        per_window = self.run(windows.input_ids, fn)
        windows_of: list[list[tuple]] = [[] for _ in texts]  # (offsets, specials, probs)
        for r, t in enumerate(windows.overflow_to_sample_mapping):
            windows_of[t].append((windows.offsets[r], windows.special_tokens_mask[r],
                                  per_window[r]))
        out = []
        for t, (text, own) in enumerate(zip(texts, windows_of)):
            scores = _merge_windows(full.offsets[t], full.special_tokens_mask[t], own)
            tokens = [{"index": i, "scores": scores[i], "start": s, "end": e,
                       "word_id": full.word_ids[t][i]}
                      for i, ((s, e), special) in enumerate(zip(full.offsets[t],
                                                                full.special_tokens_mask[t]))
                      if not special]
            ents = self._aggregate(tokens, aggregation)
            for ent in ents:
                ent["word"] = text[ent["start"]: ent["end"]]
            out.append([e for e in ents
                        if e.get("entity", e.get("entity_group")) not in ignore_labels])
        return out[0] if single else out

    def _aggregate(self, tokens: list[dict], aggregation: str) -> list[dict]:
        if aggregation in ("none", "simple"):
            ents = [{"entity": self.labels[int(tok["scores"].argmax())],
                     "score": float(tok["scores"].max()), "index": tok["index"],
                     "start": tok["start"], "end": tok["end"]} for tok in tokens]
            return ents if aggregation == "none" else _group(ents)
        words: list[list[dict]] = []
        for tok in tokens:  # a token continues a word when it shares the previous one's id
            if words and tok["word_id"] >= 0 and tok["word_id"] == words[-1][-1]["word_id"]:
                words[-1].append(tok)
            else:
                words.append([tok])
        ents = []
        for word in words:
            if aggregation == "first":
                scores = word[0]["scores"]
            elif aggregation == "max":
                scores = max(word, key=lambda tok: tok["scores"].max())["scores"]
            else:
                scores = np.nanmean(np.stack([tok["scores"] for tok in word]), axis=0)
            best = int(scores.argmax())
            ents.append({"entity": self.labels[best], "score": float(scores[best]),
                         "start": word[0]["start"], "end": word[-1]["end"]})
        return _group(ents)


def _check_aggregation(name: str) -> str:
    if name not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {name!r}")
    return name


def _tag(label: str) -> tuple[str, str]:
    """("B" | "I", type) of a label; labels without a B-/I- prefix count as I (continue)."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label


def _group(ents: list[dict]) -> list[dict]:
    """Merge adjacent entities of one type (a B- tag starts a new one), as transformers."""
    groups: list[list[dict]] = []
    for ent in ents:
        bi, tag = _tag(ent["entity"])
        if groups and tag == _tag(groups[-1][-1]["entity"])[1] and bi != "B":
            groups[-1].append(ent)
        else:
            groups.append([ent])
    return [{"entity_group": g[0]["entity"].split("-", 1)[-1],
             "score": float(np.nanmean([e["score"] for e in g])),
             "start": g[0]["start"], "end": g[-1]["end"]} for g in groups]


def _merge_windows(offsets, specials, windows) -> list[np.ndarray | None]:
    """Scores per token of the whole text from overlapping windows.

    offsets, specials: the whole text's (start, end) spans and special-token flags.
    windows: per window (offsets, specials, probs (l, C)), in order. Each token takes the
    scores of the window in which it is furthest from the nearest window edge.
    """
    content = [i for i, s in enumerate(specials) if not s]
    keys = [tuple(offsets[i]) for i in content]
    out: list[np.ndarray | None] = [None] * len(offsets)
    margin = [-1] * len(offsets)
    start = 0
    for w_offsets, w_specials, probs in windows:
        inner = [j for j, s in enumerate(w_specials) if not s]
        w_keys = [tuple(w_offsets[j]) for j in inner]
        # windows advance left to right: find where this one's first token sits in the text
        while start < len(keys) and keys[start: start + len(w_keys)] != w_keys:
            start += 1
        for k, j in enumerate(inner):
            i = content[start + k]
            m = min(k, len(inner) - 1 - k)
            if m > margin[i]:
                margin[i], out[i] = m, probs[j]
    assert all(out[i] is not None for i in content), "windows must cover every token"
    return out
