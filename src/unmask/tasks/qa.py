"""Extractive question answering in the SQuAD format.

Encoding: "[CLS] question [SEP] context [SEP]", only the context truncated; a context longer
than the window continues in further windows that overlap by `stride` tokens. Training: a
window holding the whole answer learns its first and last token; one that does not points
both at [CLS] (position 0), as in BERT's SQuAD recipe. Prediction: over all windows of a
question, the best-scoring span (start logit + end logit) among the n_best starts and ends,
inside the context, end >= start, at most max_answer_tokens long; its character offsets
give the answer text, cut from the original context.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from unmask.tasks.base import Task, model_inputs
from unmask.tasks.metrics import squad_scores
from unmask.tasks.readers import QAExample, read_squad


class QaTask(Task):
    """SQuAD-style extractive QA with a QuestionAnswering model.

    stride: tokens shared by consecutive windows. n_best: candidate starts / ends per window.
    max_answer_tokens: longest answer considered.
    """

    name = "qa"
    metric = "f1"
    model_task = "question_answering"

    def __init__(self, model_path, max_length: int = 384, stride: int = 128, n_best: int = 20,
                 max_answer_tokens: int = 30, **kwargs: Any):
        super().__init__(model_path, max_length=max_length, **kwargs)
        if stride >= max_length // 2:
            raise ValueError(f"stride={stride} must be well below max_length={max_length} "
                             "(windows would barely advance)")
        self.stride, self.n_best, self.max_answer_tokens = stride, n_best, max_answer_tokens

    def read(self, path: str | Path) -> list[QAExample]:
        return read_squad(path)

    def features(self, examples: Sequence[QAExample], train: bool) -> list[dict]:
        enc = self.tokenizer.encode_batch(
            [(e.question, e.context) for e in examples], max_length=self.max_length,
            truncation="only_second", stride=self.stride, return_overflowing=True,
            padding=False)
        out = []
        for row, source in enumerate(enc.overflow_to_sample_mapping):
            seq, offsets = enc.sequence_ids[row], enc.offsets[row]
            context = [i for i, s in enumerate(seq) if s == 1]  # token indices in the context
            f = {"input_ids": enc.input_ids[row], "token_type_ids": enc.token_type_ids[row],
                 "_example": source}
            if train:
                f["start_positions"], f["end_positions"] = self._target(
                    examples[source], context, offsets)
            else:
                f["_offsets"] = {i: offsets[i] for i in context}
            out.append(f)
        return out

    @staticmethod
    def _target(example: QAExample, context: list[int], offsets) -> tuple[int, int]:
        """Token (start, end) of the first gold answer in this window, or (0, 0)."""
        if not example.answers or not context:
            return 0, 0
        text, start_char = example.answers[0]
        end_char = start_char + len(text)
        if offsets[context[0]][0] > start_char or offsets[context[-1]][1] < end_char:
            return 0, 0  # not (entirely) in this window
        start = next(i for i in context if offsets[i][1] > start_char)
        end = next(i for i in reversed(context) if offsets[i][0] < end_char)
        return start, end

    def predict(self, model: nn.Module, examples: Sequence[QAExample]) -> dict[str, str]:
        """Question id -> predicted answer text."""
        feats = self.features(examples, train=False)
        k = self.n_best

        def fn(m, batch, padded):
            out = m(**model_inputs(padded))
            starts, ends = out.start_logits.float(), out.end_logits.float()  # (B, L)
            rows = []
            for f, s, e in zip(batch, starts, ends):
                top_s = s.topk(min(k, s.shape[0])).indices.tolist()
                top_e = e.topk(min(k, e.shape[0])).indices.tolist()
                s, e, offsets = s.tolist(), e.tolist(), f["_offsets"]
                spans = [(s[i] + e[j], offsets[i][0], offsets[j][1]) for i in top_s for j in top_e
                         if i in offsets and j in offsets and i <= j < i + self.max_answer_tokens]
                rows.append(max(spans, key=lambda span: span[0], default=None))  # first best
            return rows

        found = self.run(model, feats, fn)
        best: dict[int, tuple] = {}
        for f, cand in zip(feats, found):
            n = f["_example"]
            if cand is not None and (n not in best or cand[0] > best[n][0]):
                best[n] = cand
        return {e.id: e.context[best[n][1]:best[n][2]] if n in best else ""
                for n, e in enumerate(examples)}

    def evaluate(self, model: nn.Module, examples: Sequence[QAExample]) -> dict[str, Any]:
        pred = self.predict(model, examples)
        scores = squad_scores(pred, {e.id: [t for t, _ in e.answers] for e in examples})
        return {"metric": scores["f1"], **scores, "questions": len(examples)}


__all__ = ["QaTask"]
