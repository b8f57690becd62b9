"""Fill in masked tokens: top-k candidates per mask, or whole sentences decoded jointly.

Output as transformers' fill-mask pipeline, so the same code reads both: for each mask a list
of {"score", "token", "token_str", "sequence"}; one mask -> that list, several -> a list of
lists (each mask scored independently, the others left masked).

joint=True instead decodes all masks of a text together with beam search, left to right: each
step runs the model on every beam with the masks still to fill left masked, and keeps the
beam_size best partial fillings by summed log-probability. The final sentences are re-ranked
by their pseudo-log-likelihood (see unmask.pipelines.score), which judges the whole sentence
rather than the order the masks were filled in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from unmask.pipelines.base import Batch, as_list, centered_window, check_int
from unmask.pipelines.score import Score, logits_at


class FillMask(Score):
    """fill_mask(texts, top_k=5, targets=None, joint=False, beam_size=5).

    top_k: candidates per mask, >= 1; capped at the vocabulary size (or at the number of
        targets). targets: restrict candidates to these words (a word missing from the
        vocabulary is replaced by its first token, as transformers does).
    Each text must contain the tokenizer's mask token ([MASK], <mask>, ...).
    joint=True returns per text the top_k whole sentences, best first:
    {"sequence", "tokens" (ids filled in, left to right), "token_strs", "pll" (the sentence's
    pseudo-log-likelihood), "log_prob" (the beam's summed log-probability)}.
    """

    def __call__(self, inputs: str | Sequence[str], top_k: int = 5,
                 targets: str | Sequence[str] | None = None, joint: bool = False,
                 beam_size: int = 5):
        texts, single = as_list(inputs)
        check_int("top_k", top_k)
        target_ids = self._target_ids(targets)
        # As with targets: never more candidates than there are tokens to choose from.
        top_k = min(top_k, self.config.vocab_size if target_ids is None else len(target_ids))
        enc = self.tokens(texts, truncation=False)
        mask_id = self.tokenizer.mask_token_id
        masks = []
        for i, ids in enumerate(enc.input_ids):
            where = [p for p, t in enumerate(ids) if t == mask_id]
            if not where:
                raise ValueError(
                    f"input {i} has no mask token: write {self.tokenizer.special_tokens['mask']}"
                    f" where a word should be predicted ({texts[i][:60]!r})"
                )
            masks.append(where)
        if joint:
            out = [self._joint(ids, where, top_k, beam_size, target_ids)
                   for ids, where in zip(enc.input_ids, masks)]
        else:
            out = self._independent(enc.input_ids, masks, top_k, target_ids)
        return out[0] if single else out

    def _target_ids(self, targets) -> torch.Tensor | None:
        if targets is None:
            return None
        if isinstance(targets, str):
            targets = [targets]
        vocab = self.tokenizer.get_vocab()
        ids = {vocab[word] for word in targets if word in vocab}
        missing = [word for word in targets if word not in vocab]
        if missing:
            pieces = self.tokenizer.encode_batch(missing, add_special_tokens=False,
                                                 truncation=False, padding=False).input_ids
            ids.update(row[0] for row in pieces if row)
        if not ids:
            raise ValueError(f"none of the targets {list(targets)} has a token in the vocabulary")
        return torch.tensor(sorted(ids), dtype=torch.long)

    def _probs(self, rows, positions, target_ids, k: int, log: bool = False):
        """Per row, per position: (values, token ids), the k best, over targets if given."""

        def fn(batch: Batch):
            logits = logits_at(self, batch, [positions[r] for r in batch.index])  # (N, V)
            probs = logits.log_softmax(-1) if log else logits.softmax(-1)
            if target_ids is not None:
                probs = probs[:, target_ids.to(probs.device)]
            values, best = probs.topk(k, dim=-1)  # (N, k)
            if target_ids is not None:
                best = target_ids.to(best.device)[best]
            sizes = [len(positions[r]) for r in batch.index]
            return [list(zip(v.tolist(), b.tolist()))
                    for v, b in zip(values.cpu().split(sizes), best.cpu().split(sizes))]

        return self.run(rows, fn)

    def _independent(self, ids_list, masks, top_k, target_ids):
        jobs = []  # (row, its mask positions, text, their positions in the text)
        for t, (ids, where) in enumerate(zip(ids_list, masks)):
            if len(ids) <= self.max_length:
                jobs.append((list(ids), where, t, where))
            else:  # a long text: one window per mask, centred on it
                for p in where:
                    row, q = centered_window(ids, p, self.max_length)
                    jobs.append((row, [q], t, [p]))
        per_row = self._probs([j[0] for j in jobs], [j[1] for j in jobs], target_ids, top_k)
        found: list[dict[int, tuple]] = [{} for _ in ids_list]
        for (_, _, t, where), per_mask in zip(jobs, per_row):
            found[t].update(zip(where, per_mask))
        out = []
        for ids, where, per_text in zip(ids_list, masks, found):
            single = len(where) == 1
            lists = [[self._proposal(ids, p, tok, v, single) for v, tok in zip(*per_text[p])]
                     for p in where]
            out.append(lists[0] if single else lists)
        return out

    def _proposal(self, ids, p: int, token: int, score: float, skip_specials: bool) -> dict:
        filled = list(ids)
        filled[p] = token
        # As transformers: with several masks the others stay visible in "sequence".
        return {"score": score, "token": token,
                "token_str": self.tokenizer.decode([token], skip_special_tokens=False),
                "sequence": self.tokenizer.decode(filled, skip_special_tokens=skip_specials)}

    def _joint(self, ids, where, top_k, beam_size, target_ids):
        check_int("beam_size", beam_size)
        width = max(beam_size, top_k)
        k = width if target_ids is None else min(width, len(target_ids))
        beams = [(list(ids), 0.0)]
        for p in where:  # left to right
            windows = [centered_window(b, p, self.max_length) for b, _ in beams]
            found = self._probs([row for row, _ in windows], [[q] for _, q in windows],
                                target_ids, k, log=True)
            grown = [(b[:p] + [tok] + b[p + 1:], s + v)
                     for (b, s), per_mask in zip(beams, found) for v, tok in zip(*per_mask[0])]
            beams = sorted(grown, key=lambda x: -x[1])[:width]
        special_ids = self.tokenizer.special_ids
        specials = [[i not in where and t in special_ids for i, t in enumerate(b)]
                    for b, _ in beams]
        plls = self.token_log_probs([b for b, _ in beams], specials)
        ranked = sorted(zip(beams, plls), key=lambda x: -sum(lp for _, lp in x[1]))[:top_k]
        return [{"sequence": self.tokenizer.decode(b),
                 "tokens": [b[p] for p in where],
                 "token_strs": [self.tokenizer.decode([b[p]], skip_special_tokens=False)
                                for p in where],
                 "pll": sum(lp for _, lp in lps), "log_prob": s}
                for (b, s), lps in ranked]
