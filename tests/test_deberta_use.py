"""DeBERTa checkpoints as published (spm.model, no tokenizer.json) through every pipeline and
`unmask finetune`. Models: random weights from transformers on a small v3-shaped config; the
sentencepiece model is trained here on SST-2 sentences."""

import json
from pathlib import Path

import pytest
import torch

from unmask.cli import main
from unmask.pipelines import pipeline

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOCAB = 1000
ARCH = {"fill-mask": "DebertaV2ForMaskedLM", "classify": "DebertaV2ForSequenceClassification",
        "ner": "DebertaV2ForTokenClassification", "answer": "DebertaV2ForQuestionAnswering",
        "embed": "DebertaV2Model"}


@pytest.fixture(scope="module")
def spm_dir(tmp_path_factory):
    if not (DATA / "sst2").is_dir():
        pytest.skip(f"{DATA} is absent")
    root = tmp_path_factory.mktemp("deberta_spm")
    lines = [r.split("\t")[0] for r in (DATA / "sst2" / "train_full.tsv").read_text().splitlines()[1:]]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines[:20000]), model_prefix=str(root / "spm"), vocab_size=VOCAB - 1,
        model_type="unigram", num_threads=2, minloglevel=2, pad_id=0, bos_id=1, eos_id=2,
        unk_id=3, pad_piece="[PAD]", bos_piece="[CLS]", eos_piece="[SEP]", unk_piece="[UNK]")
    return root


def _checkpoint(root: Path, spm_dir: Path, task: str) -> Path:
    cfg = transformers.DebertaV2Config(
        vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, relative_attention=True, position_buckets=256,
        norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p",
        position_biased_input=False, type_vocab_size=0, layer_norm_eps=1e-7, legacy=False,
        id2label={0: "negative", 1: "positive"} if task == "classify" else None)
    if task == "ner":
        cfg.id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
    torch.manual_seed(0)
    out = root / task
    getattr(transformers, ARCH[task])(cfg).save_pretrained(out)
    (out / "spm.model").write_bytes((spm_dir / "spm.model").read_bytes())
    for name, content in {
        "tokenizer_config.json": {"do_lower_case": False, "vocab_type": "spm"},
        "special_tokens_map.json": {"cls_token": "[CLS]", "sep_token": "[SEP]",
                                    "pad_token": "[PAD]", "unk_token": "[UNK]",
                                    "mask_token": "[MASK]"},
        "added_tokens.json": {"[MASK]": VOCAB - 1}}.items():
        (out / name).write_text(json.dumps(content))
    return out


@pytest.mark.parametrize("task", list(ARCH))
def test_every_pipeline_takes_a_deberta_checkpoint(task, spm_dir, tmp_path):
    run = pipeline(task, _checkpoint(tmp_path, spm_dir, task))
    if task == "fill-mask":
        out = run("a [MASK] and moving film", top_k=3)
        assert len(out) == 3 and {"token_str", "score", "sequence"} <= set(out[0])
    elif task == "classify":
        assert run("a gripping film")[0]["label"] in ("negative", "positive")
    elif task == "ner":
        assert isinstance(run("Tom Hanks plays a man"), list)
    elif task == "answer":
        out = run(question="Who plays?", context="Tom Hanks plays a man adrift at sea.")
        assert {"answer", "score", "start", "end"} <= set(out)
    else:
        vectors = run(["a gripping film", "dull"])
        assert torch.as_tensor(vectors).shape == (2, 64)


def test_finetune_classify_takes_a_deberta_checkpoint(spm_dir, tmp_path):
    model = _checkpoint(tmp_path, spm_dir, "classify")
    rows = (DATA / "sst2" / "train_full.tsv").read_text().splitlines()
    (tmp_path / "train.tsv").write_text("\n".join(rows[:97]) + "\n")
    (tmp_path / "dev.tsv").write_text("\n".join(rows[:1] + rows[1000:1049]) + "\n")
    code = main(["finetune", "classify", "--model", str(model), "--train",
                 str(tmp_path / "train.tsv"), "--dev", str(tmp_path / "dev.tsv"), "--out",
                 str(tmp_path / "run"), "--epochs", "1", "--no-progress"])
    assert code == 0
    clf = pipeline("classify", tmp_path / "run" / "hf")  # tokenizer saved beside it (spm.model)
    assert clf("a gripping film")[0]["label"] in ("0", "1")  # the training file's labels


def test_fill_mask_refuses_a_head_the_checkpoint_does_not_hold(spm_dir, tmp_path):
    """transformers re-initialised a missing DeBERTa MLM head silently (nonsense fill-mask)."""
    bare = _checkpoint(tmp_path, spm_dir, "embed")  # DebertaV2Model: no masked-LM weights
    with pytest.raises(ValueError, match=r"no trained masked_lm head \(missing \['head"):
        pipeline("fill-mask", bare)
