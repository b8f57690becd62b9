"""Pseudo-log-likelihood (PLL) of sentences under a masked language model.

PLL(text) = sum over its tokens i of log P(token_i | text with token i masked) (Salazar et
al. 2020): one masked copy per token, all copies batched together; the MLM head runs only at
the masked position of each copy. Long texts are scored in windows centred on each token.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from unmask.pipelines.base import Batch, Pipeline, as_list, centered_window


def logits_at(pipe: Pipeline, batch: Batch, positions: Sequence[Sequence[int]]) -> torch.Tensor:
    """MLM logits float32 (N, V) at the given positions of each row of a batch.

    positions: for each of the B rows, the positions to decode (N = total of them), in order.
    """
    hidden = pipe.encode(batch)  # (B, L, H)
    rows = torch.tensor([r for r, ps in enumerate(positions) for _ in ps], dtype=torch.long)
    cols = torch.tensor([p for ps in positions for p in ps], dtype=torch.long)
    picked = hidden[rows.to(hidden.device), cols.to(hidden.device)]  # (N, H)
    return pipe.model.head(picked, pipe.model.encoder.embeddings.word.weight).float()


class Score(Pipeline):
    """score(texts) -> per text {"sequence", "pll", "pppl", "tokens": [{"token", "log_prob"}]}.

    pppl is the pseudo-perplexity exp(-pll / number of tokens). Special tokens are not scored.
    """

    task = "masked_lm"

    def __call__(self, inputs: str | Sequence[str]):
        texts, single = as_list(inputs)
        enc = self.tokens(texts, truncation=False)
        per_token = self.token_log_probs(enc.input_ids, enc.special_tokens_mask)
        out = []
        for text, ids, scored in zip(texts, enc.input_ids, per_token):
            pll = sum(lp for _, lp in scored)
            out.append({"sequence": text, "pll": pll,
                        "pppl": math.exp(-pll / max(len(scored), 1)),
                        "tokens": [{"token": self.tokenizer.id_to_token(ids[i]), "log_prob": lp}
                                   for i, lp in scored]})
        return out[0] if single else out

    def token_log_probs(self, ids_list: Sequence[Sequence[int]],
                        specials: Sequence[Sequence[bool]]) -> list[list[tuple[int, float]]]:
        """For each id row, [(position, log P(token | rest))] over its non-special tokens."""
        mask_id = self.tokenizer.mask_token_id
        rows, where, targets = [], [], []
        for t, (ids, special) in enumerate(zip(ids_list, specials)):
            for i, is_special in enumerate(special):
                if is_special:
                    continue
                masked = list(ids)
                masked[i] = mask_id
                row, pos = centered_window(masked, i, self.max_length)
                rows.append(row)
                where.append((t, i, pos))
                targets.append(ids[i])

        def fn(batch: Batch) -> list[float]:
            logits = logits_at(self, batch, [[where[r][2]] for r in batch.index])  # (B, V)
            want = torch.tensor([targets[r] for r in batch.index], device=logits.device)
            return logits.log_softmax(-1).gather(1, want[:, None]).squeeze(1).tolist()

        out: list[list[tuple[int, float]]] = [[] for _ in ids_list]
        for (t, i, _), lp in zip(where, self.run(rows, fn) if rows else []):
            out[t].append((i, lp))
        return out
