"""`unmask export onnx`: graphs that ONNX Runtime runs to unmask's own numbers (1e-4).

Every family the encoder builds (tiny random Hugging Face checkpoints loaded through
unmask.checkpoints) and every exported task; real sentences from ../shared/data (SST-2 dev)
when present, else a few fixed ones. onnxruntime is a test-only dependency.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from test_pipelines_assets import MINILM, tiny
from unmask import pipeline
from unmask.cli import main
from unmask.export import TASKS, export_onnx, run_session, session
from unmask.tokenizer import Tokenizer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
transformers = pytest.importorskip("transformers")
SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2" / "dev.tsv"
TOL = 1e-4


def sentences(n: int = 24) -> list[str]:
    if SST2.is_file():
        with open(SST2, encoding="utf-8") as f:
            return [row["sentence"] for row in csv.DictReader(f, delimiter="\t")][:n]
    return ["The cat sat on the mat.", "A very long and winding sentence about nothing " * 3,
            "Stocks fell sharply today."] * (n // 3)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained(MINILM)


def batch(tok, texts, pairs=None, max_length=60):
    enc = tok.encode_batch(list(zip(texts, pairs)) if pairs else texts, max_length=max_length,
                           padding="longest")
    return enc.input_ids, enc.attention_mask.long(), enc.token_type_ids


def family_checkpoint(root: Path, family: str, task: str) -> Path:
    """A tiny random Hugging Face checkpoint of one family with the head of one task."""
    torch.manual_seed(0)
    small = {"vocab_size": 30522, "num_hidden_layers": 2, "num_attention_heads": 2,
             "max_position_embeddings": 96}
    if family == "distilbert":
        cfg = transformers.DistilBertConfig(dim=32, hidden_dim=64, n_layers=2, n_heads=2,
                                            vocab_size=30522, max_position_embeddings=96)
    elif family == "deberta-v2":  # DeBERTa-v3's attention, a known export breaker elsewhere
        cfg = transformers.DebertaV2Config(
            hidden_size=32, intermediate_size=64, relative_attention=True, position_buckets=32,
            norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type="p2c|c2p",
            position_biased_input=False, type_vocab_size=0, **small)
    elif family == "modernbert":
        cfg = transformers.ModernBertConfig(hidden_size=32, intermediate_size=64,
                                            global_attn_every_n_layers=2, local_attention=16,
                                            pad_token_id=0, **small)
    else:
        cls = {"bert": transformers.BertConfig, "roberta": transformers.RobertaConfig,
               "electra": transformers.ElectraConfig, "albert": transformers.AlbertConfig}
        extra = {"embedding_size": 16} if family in ("electra", "albert") else {}
        if family == "roberta":
            extra["pad_token_id"] = 1
        cfg = cls[family](hidden_size=32, intermediate_size=64, **small, **extra)
    cfg.num_labels = 2 if task == "qa" else 3
    kind = {"classify": "ForSequenceClassification", "ner": "ForTokenClassification",
            "fill-mask": "ForMaskedLM", "qa": "ForQuestionAnswering", "embed": "Model"}[task]
    name = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert",
            "electra": "Electra", "albert": "Albert", "modernbert": "ModernBert",
            "deberta-v2": "DebertaV2"}[family]
    model = getattr(transformers, name + kind)(cfg).eval()
    out = root / f"{family}-{task}"
    model.save_pretrained(out)
    return out


def unmask_outputs(model, task, ids, mask, types):
    """What the pipelines compute, from unmask's torch model on the unpadded layout."""
    from unmask.export import _Graph

    model.encoder.layout = "unpadded"
    with torch.inference_mode():
        out = _Graph(model, task)(ids, mask.bool(), types)
    return [o.float().numpy() for o in out]


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "electra", "albert",
                                    "modernbert", "deberta-v2"])
def test_every_family_exports_to_unmask_numbers(family, tok, tmp_path):
    from unmask.checkpoints import load

    task = {"bert": "classify", "roberta": "ner", "distilbert": "qa", "electra": "fill-mask",
            "albert": "classify", "modernbert": "ner", "deberta-v2": "classify"}[family]
    model = load(family_checkpoint(tmp_path, family, task), task=TASKS[task])
    out = export_onnx(model, task, tmp_path / "onnx")
    sess = session(out / "model.onnx")
    texts = sentences()
    for rows in (texts[:3], texts[3:11]):  # two batch sizes and lengths: dynamic axes
        ids, mask, types = batch(tok, rows)
        ids[ids >= model.config.vocab_size] = 5
        got = run_session(sess, ids, mask, types)
        want = unmask_outputs(model, task, ids, mask, types)
        real = mask.bool().numpy()
        for name, w in zip(json.loads((out / "unmask_export.json").read_text())["outputs"],
                           want):
            g = got[name]
            if g.ndim >= 2 and g.shape[1] == ids.shape[1]:  # per token: padding unspecified
                g, w = g[real], w[real]
            assert np.abs(g - w).max() <= TOL, (family, task, name)


def test_embed_export_matches_the_pipeline_and_serves_through_onnx_engine(tmp_path, capsys):
    out = tmp_path / "minilm"
    assert main(["export", "onnx", str(MINILM), "--task", "embed", "--out", str(out),
                 "--int8"]) == 0
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json"} <= {p.name for p in
                                                                   out.iterdir()}
    texts = sentences(48) + [" ".join(sentences(12))]  # the last one > 256 tokens: windows
    ours = pipeline("embed", MINILM, dtype="float32")(texts)
    onnx = pipeline("embed", out, engine="onnx")
    assert (onnx(texts) - ours).abs().max().item() <= TOL
    assert onnx(texts[0]).shape == (384,)
    int8 = pipeline("embed", out, engine="onnx", dtype="int8")(texts)
    assert torch.nn.functional.cosine_similarity(int8, ours).mean().item() >= 0.95
    # the graph alone, as a deployment would call it: normalised embeddings
    ids, mask, types = batch(Tokenizer.from_pretrained(out), texts[:5], max_length=256)
    vectors = run_session(session(out / "model.onnx"), ids, mask, types)["embeddings"]
    assert np.abs(vectors - ours[:5].numpy()).max() <= TOL


def test_onnx_engine_refuses_what_it_cannot_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="unmask export onnx"):
        pipeline("embed", tmp_path, engine="onnx")
    with pytest.raises(ValueError, match="engine='torch'"):
        pipeline("ner", tmp_path, engine="onnx")
    with pytest.raises(ValueError, match="engine must be"):
        pipeline("embed", MINILM, engine="tensorrt")
    with pytest.raises(ValueError, match="unknown export task"):
        export_onnx(tiny(tmp_path / "mlm", "mlm"), "summarize", tmp_path / "x")
