"""Multiple-choice heads (SWAG-style) against transformers' *ForMultipleChoice, and back."""

import pytest
import torch

from unmask.checkpoints import load, save

transformers = pytest.importorskip("transformers")

SMALL = {"vocab_size": 300, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 128, "hidden_dropout_prob": 0.0,
         "attention_probs_dropout_prob": 0.0}
CASES = {
    "bert": ("BertConfig", "BertForMultipleChoice", {}),
    "roberta": ("RobertaConfig", "RobertaForMultipleChoice", {"pad_token_id": 1}),
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForMultipleChoice", {
        "relative_attention": True, "position_buckets": 32, "norm_rel_ebd": "layer_norm",
        "share_att_key": True, "pos_att_type": "p2c|c2p", "position_biased_input": False,
        "type_vocab_size": 0}),
}


@pytest.mark.parametrize("family", list(CASES))
def test_scores_match_transformers_and_save_back(family, tmp_path):
    config, arch, extra = CASES[family]
    torch.manual_seed(0)
    ref = getattr(transformers, arch)(getattr(transformers, config)(**SMALL, **extra)).eval()
    ref.save_pretrained(tmp_path / "hf")
    ours = load(tmp_path / "hf").eval()
    assert ours.task == "multiple_choice" and not ours.load_report.missing
    ids = torch.randint(3, 300, (2, 4, 12))  # 2 examples x 4 choices x 12 tokens
    mask = torch.ones_like(ids)
    mask[1, 2, 8:] = 0
    labels = torch.tensor([3, 0])
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask, labels=labels)
        got = ours(ids, attention_mask=mask, labels=labels)
    assert got.logits.shape == (2, 4)
    torch.testing.assert_close(got.logits, want.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(got.loss, want.loss, atol=1e-5, rtol=0)
    save(ours, tmp_path / "back", format="hf")
    again = getattr(transformers, arch).from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids, attention_mask=mask).logits, want.logits,
                                   atol=1e-6, rtol=0)


def test_bad_shapes_say_what_is_expected():
    from unmask.config import preset
    from unmask.heads import MultipleChoice

    model = MultipleChoice(preset("tiny", vocab_size=100))
    with pytest.raises(ValueError, match=r"\(B, C, L\)"):
        model(torch.ones(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="choice indices"):
        model(torch.ones(2, 3, 5, dtype=torch.long), labels=torch.zeros(3, dtype=torch.long))
