"""Sequence classification, and zero-shot classification through an NLI checkpoint.

Outputs as transformers' text-classification pipeline: per text a list of {"label", "score"},
best first (top_k of them; None = all labels), labels named by the checkpoint's id2label.
Scores: softmax over labels, sigmoid for multi-label or single-logit checkpoints, raw values
for regression (as transformers). Texts longer than the model window are split into
overlapping windows whose scores are averaged, instead of being cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unmask.pipelines.base import Batch, Labelled, as_list, check_int, window_mean


class Classify(Labelled):
    """classify(texts or (text, pair) tuples, top_k=1) -> per text [{"label", "score"}]."""

    task = "sequence_classification"

    def scores(self, inputs: Sequence[str] | Sequence[tuple[str, str]],
               truncation: str | bool = True, raw: bool = False) -> torch.Tensor:
        """Label scores float32 (N, C) of N texts (or pairs), averaged over windows.

        raw: average the logits instead of probabilities.
        """
        enc = self.tokens(inputs, max_length=self.max_length, truncation=truncation,
                          return_overflowing=True, stride=self.stride)
        kind = self.model.problem_type
        if kind is None:
            kind = "multi_label_classification" if self.model.num_labels == 1 else "single"

        def fn(batch: Batch) -> list[torch.Tensor]:
            logits = self.model.head(self.encode(batch), batch.attention_mask).float()  # (B, C)
            if raw or kind == "regression":
                return list(logits.cpu())
            probs = logits.sigmoid() if kind == "multi_label_classification" else logits.softmax(-1)
            return list(probs.cpu())

        rows = torch.stack(self.run(enc.input_ids, fn, enc.token_type_ids))  # (rows, C)
        return window_mean(rows, enc.overflow_to_sample_mapping, len(inputs))

    def __call__(self, inputs, top_k: int | None = 1):
        texts, single = as_list(inputs)
        scores = self.scores(texts)
        k = len(self.labels) if top_k is None else min(check_int("top_k", top_k),
                                                          len(self.labels))
        values, best = scores.topk(k, dim=-1)
        out = [[{"label": self.labels[i], "score": v} for v, i in zip(vs, bs)]
               for vs, bs in zip(values.tolist(), best.tolist())]
        return out[0] if single else out


class ZeroShot(Classify):
    """zero_shot(texts, candidate_labels, hypothesis_template="This example is {}.",
    multi_label=False) -> per text {"sequence", "labels", "scores"}, best first.

    Each (text, hypothesis with a label) pair goes through the NLI model. Single-label:
    softmax of the entailment logits across labels; multi-label: per label, softmax of
    (contradiction, entailment). As transformers' zero-shot-classification pipeline.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = [label.lower() for label in self.labels]
        self.entailment = next((i for i, n in enumerate(names) if n.startswith("entail")), None)
        if self.entailment is None:
            raise ValueError(f"zero-shot needs an NLI checkpoint with an 'entailment' label; "
                             f"this one has {self.labels}")
        self.contradiction = -1 if self.entailment == 0 else 0

    def __call__(self, inputs, candidate_labels: Sequence[str] | str,
                 hypothesis_template: str = "This example is {}.", multi_label: bool = False):
        texts, single = as_list(inputs)
        labels = [candidate_labels] if isinstance(candidate_labels, str) else list(candidate_labels)
        if not labels:
            raise ValueError("give at least one candidate label")
        if hypothesis_template.format(labels[0]) == hypothesis_template:
            raise ValueError(f"hypothesis_template {hypothesis_template!r} has no {{}} for the "
                             "label")
        pairs = [(t, hypothesis_template.format(label)) for t in texts for label in labels]
        logits = self.scores(pairs, truncation="only_first", raw=True)
        logits = logits.view(len(texts), len(labels), -1)  # (N, labels, C)
        if multi_label or len(labels) == 1:
            two = logits[..., [self.contradiction, self.entailment]]
            scores = two.softmax(-1)[..., 1]  # (N, labels)
        else:
            scores = logits[..., self.entailment].softmax(-1)
        values, order = scores.sort(dim=-1, descending=True, stable=True)
        out = [{"sequence": text, "labels": [labels[i] for i in idx], "scores": row}
               for text, row, idx in zip(texts, values.tolist(), order.tolist())]
        return out[0] if single else out
