"""Extractive question answering: the span of the context that answers the question.

As transformers' question-answering pipeline: the (question, context) pair is cut into
windows of max_length tokens over the context that overlap by doc_stride tokens (the question
is repeated in each); in each window, start and end logits outside the context are masked out,
each turned into probabilities by a softmax, and a span (s, e) with s <= e < s +
max_answer_len scores p_start(s) * p_end(e); the best spans over all windows win. Output
{"answer", "score", "start", "end"} with character offsets into the context.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unmask.pipelines.base import Batch, Pipeline, check_int

_MASKED = -10000.0  # as transformers: an impossible position gets exp(-10000) ~ 0


class Answer(Pipeline):
    """answer(question, context, top_k=1, max_answer_len=15, doc_stride=128)."""

    task = "question_answering"

    def __call__(self, question: str | Sequence[str], context: str | Sequence[str],
                 top_k: int = 1, max_answer_len: int = 15, doc_stride: int = 128,
                 max_length: int = 384):
        single = isinstance(question, str)
        questions = [question] if single else list(question)
        contexts = [context] * len(questions) if isinstance(context, str) else list(context)
        if len(questions) != len(contexts):
            raise ValueError(f"got {len(questions)} questions but {len(contexts)} contexts")
        for name, value, low in (("top_k", top_k, 1), ("max_answer_len", max_answer_len, 1),
                                 ("doc_stride", doc_stride, 0), ("max_length", max_length, 8)):
            check_int(name, value, low)
        max_length = min(max_length, self.max_length)
        pairs = list(zip(questions, contexts))
        q_len = max(len(ids) for ids in self.tokens(questions, truncation=False).input_ids)
        room = max_length - q_len - 1  # context tokens per window ([SEP] closes the pair)
        if room < 2:
            raise ValueError(f"a question of {q_len} tokens leaves no room for context in a "
                             f"{max_length}-token window; shorten it")
        enc = self.tokens(pairs, max_length=max_length, truncation="only_second",
                          return_overflowing=True, stride=min(doc_stride, room - 1))

        def fn(batch: Batch) -> list[tuple[torch.Tensor, torch.Tensor]]:
            start, end = self.model.head(self.encode(batch))  # (B, L) each
            return [(s[:n].float().cpu(), e[:n].float().cpu())
                    for s, e, n in zip(start, end, batch.lengths)]

        logits = self.run(enc.input_ids, fn, enc.token_type_ids)
        found: list[list[dict]] = [[] for _ in pairs]
        for r, t in enumerate(enc.overflow_to_sample_mapping):
            context_tokens = torch.tensor([s == 1 for s in enc.sequence_ids[r]])
            found[t].extend(_spans(*logits[r], context_tokens, enc.offsets[r], contexts[t],
                                   top_k, max_answer_len))
        out = [sorted(f, key=lambda a: -a["score"])[:top_k] for f in found]
        out = [o[0] if top_k == 1 and o else o for o in out]
        return out[0] if single else out


def _spans(start: torch.Tensor, end: torch.Tensor, context_tokens: torch.Tensor, offsets,
           context: str, top_k: int, max_answer_len: int) -> list[dict]:
    """The top_k answer spans of one window.

    start, end: float (l,) logits. context_tokens: bool (l,), True where the token belongs to
    the context. offsets: (start, end) character spans of the l tokens.
    """
    keep = context_tokens.clone()
    keep[0] = True  # the first token ([CLS]) takes part in the softmax, as in transformers
    p_start = start.masked_fill(~keep, _MASKED).softmax(-1)
    p_end = end.masked_fill(~keep, _MASKED).softmax(-1)
    p_start[0] = p_end[0] = 0.0
    scores = p_start[:, None] * p_end[None, :]  # (l, l) score of span (s, e)
    scores = scores.triu().tril(max_answer_len - 1)
    ok = context_tokens[:, None] & context_tokens[None, :]
    scores = scores.masked_fill(~ok, -1.0)  # spans outside the context never win
    k = min(top_k, int(ok.sum()))
    values, flat = scores.flatten().topk(k)
    out = []
    for v, f in zip(values.tolist(), flat.tolist()):
        if v < 0:
            break
        s, e = divmod(f, scores.shape[1])
        a, b = int(offsets[s][0]), int(offsets[e][1])
        out.append({"score": v, "start": a, "end": b, "answer": context[a:b]})
    return out
