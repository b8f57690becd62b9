"""XLM-RoBERTa (a RoBERTa with a 250k sentencepiece vocabulary) against transformers.

The model is random-initialised by transformers from the config of xlm-roberta-base (depth and
vocabulary shrunk for speed). The tokenizer side is tested in test_tokenizer_sentencepiece.py.
"""

import pytest
import torch

from unmask.checkpoints import load

transformers = pytest.importorskip("transformers")


@pytest.mark.parametrize("arch", ["XLMRobertaModel", "XLMRobertaForMaskedLM",
                                  "XLMRobertaForSequenceClassification"])
def test_outputs_match_transformers(arch, tmp_path):
    cfg = transformers.XLMRobertaConfig(
        vocab_size=1000, hidden_size=768, num_hidden_layers=2, num_attention_heads=12,
        intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    ref = getattr(transformers, arch)(cfg).eval()
    ref.save_pretrained(tmp_path)
    ours = load(tmp_path).eval()
    ids = torch.randint(3, 1000, (2, 30))
    ids[:, 0] = 0
    mask = torch.ones_like(ids)
    ids[1, 20:], mask[1, 20:] = 1, 0  # padded with <pad> = 1
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask)
        want = out.logits if hasattr(out, "logits") else out.last_hidden_state
        got = ours(ids, attention_mask=mask)
        got = got.logits if hasattr(got, "logits") else got.last_hidden_state
    if want.dim() == 3:
        got, want = got[mask.bool()], want[mask.bool()]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
