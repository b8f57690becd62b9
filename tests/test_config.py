"""unmask.config: presets, validation, and the dict / JSON form checkpoints store."""

from __future__ import annotations

import json

import pytest

from unmask.config import EncoderConfig, preset

MODERNBERT = EncoderConfig(vocab_size=60, hidden_size=32, num_layers=3, num_heads=4,
                           intermediate_size=48, type_vocab_size=0, position="rotary",
                           rope_theta=160000.0, local_rope_theta=10000.0, norm="pre",
                           activation="geglu", local_window=6, global_every=3)
ALBERT = EncoderConfig(vocab_size=60, hidden_size=32, num_layers=3, num_heads=4,
                       intermediate_size=64, embedding_size=16, shared_layers=1)


def test_presets_have_bert_sizes():
    sizes = {name: (preset(name).num_layers, preset(name).hidden_size) for name in
             ("tiny", "mini", "small", "base")}
    assert sizes == {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "base": (12, 768)}
    assert preset("mini", vocab_size=8000).vocab_size == 8000
    assert preset("base").head_dim == 64
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")


@pytest.mark.parametrize("bad,match", [
    ({"hidden_size": 30, "num_heads": 4}, "not divisible by num_heads"),
    ({"activation": "swiglu"}, "activation must be one of"),
    ({"norm": "sandwich"}, "norm must be"),
    ({"position": "alibi"}, "position must be one of"),
    ({"num_layers": 0}, "num_layers must be a positive int"),
    ({"shared_layers": 20}, "exceeds num_layers"),
    ({"hidden_dropout": 1.5}, "hidden_dropout must lie in"),
])
def test_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        EncoderConfig(**bad)


def test_config_dict_round_trip_and_typos():
    cfg = MODERNBERT
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown EncoderConfig field.*num_hidden_layers"):
        EncoderConfig.from_dict({**cfg.to_dict(), "num_hidden_layers": 3})
    assert [cfg.is_local(i) for i in range(3)] == [False, True, True]
    assert [cfg.rope_theta_of(i) for i in range(3)] == [160000.0, 10000.0, 10000.0]
    albert = ALBERT
    assert albert.num_blocks == 1 and [albert.block_of(i) for i in range(3)] == [0, 0, 0]


def test_json_file_round_trip(tmp_path):
    path = tmp_path / "encoder.json"
    path.write_text(json.dumps(MODERNBERT.to_dict()))
    again = EncoderConfig.from_dict(json.loads(path.read_text()), source=str(path))
    assert again == MODERNBERT and again.head_dim == 8 and again.embed_dim == 32
    assert ALBERT.embed_dim == 16 and ALBERT.replace(num_layers=6).block_of(5) == 0


@pytest.mark.parametrize("content", ["[1, 2]", "3", '"bert"', "null"])
def test_a_config_that_is_not_an_object_names_the_file(tmp_path, content):
    # A config.json holding a JSON array used to fail with AttributeError deep inside.
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=r"config\.json: an encoder config must be a JSON object"):
        EncoderConfig.from_dict(json.loads(path.read_text()), source=str(path))


def test_typo_errors_name_the_source_too():
    with pytest.raises(ValueError, match=r"^unmask\.json: unknown EncoderConfig field.*hiden"):
        EncoderConfig.from_dict({"hiden_size": 3}, source="unmask.json")
