"""DeBERTa-v3 pretraining: the architecture with every objective, gradient-disentangled
embedding sharing (GDES), its exact resume and its saved (materialised) discriminator, and the
freezing / layer-decay settings of continued pretraining."""

from __future__ import annotations

import pytest
import torch

from test_train_loop import losses, synthetic_shards, tiny, tiny_config
from unmask.checkpoints import load
from unmask.config import preset
from unmask.corruption import MLMCorruption
from unmask.data import PackedBatches, TokenShards
from unmask.heads import MaskedLM, ReplacedTokenDetector
from unmask.train.objectives import ElectraObjective, generator_config
from unmask.train.pretrain import PretrainRecipe, arch_overrides, pretrainer


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("shards"))


def gdes_objective(vocab=64):
    torch.manual_seed(0)
    cfg = preset("tiny", vocab_size=vocab, hidden_dropout=0.0, attention_dropout=0.0,
                 **arch_overrides("deberta-v3", 32))
    disc, gen = ReplacedTokenDetector(cfg), MaskedLM(generator_config(cfg))
    corruption = MLMCorruption(mask_token_id=4, vocab_size=vocab, special_ids=range(5))
    return ElectraObjective(gen, disc, corruption, embedding_sharing="gdes")


def test_deberta_v3_arch_is_the_published_attention():
    cfg = preset("mini", vocab_size=100, **arch_overrides("deberta-v3", 128))
    assert cfg.position == "none" and cfg.relative_attention == ("c2p", "p2c")
    assert cfg.position_buckets == 256 and cfg.relative_norm and cfg.share_att_key
    assert cfg.type_vocab_size == 0 and cfg.layer_norm_eps == 1e-7
    assert arch_overrides("deberta-v3", 32)["position_buckets"] == 64
    assert arch_overrides("bert", 128) == {}


def test_rtd_loss_trains_the_delta_and_never_the_generator_table(shards):
    objective = gdes_objective()
    gen_table = objective.generator.encoder.embeddings.word.weight
    disc_word = objective.discriminator.encoder.embeddings.word
    delta = disc_word.parametrizations.weight.original
    assert not delta.detach().any()  # starts at zero: E_D = E_G
    assert torch.equal(disc_word.weight, gen_table)
    batch = next(iter(PackedBatches(TokenShards(shards), seq_len=32, batch_size=4)))
    inputs, _ = objective.prepare(batch)
    terms, _ = objective(**inputs)
    mlm, rtd = terms
    g_rtd = torch.autograd.grad(rtd, [gen_table, delta], allow_unused=True,
                                retain_graph=True)
    assert g_rtd[0] is None or float(g_rtd[0].abs().sum()) == 0.0  # stop-gradient
    assert float(g_rtd[1].abs().sum()) > 0
    g_mlm = torch.autograd.grad(mlm, [gen_table, delta], allow_unused=True)
    assert float(g_mlm[0].abs().sum()) > 0  # the generator's MLM loss trains E_G
    assert g_mlm[1] is None or float(g_mlm[1].abs().sum()) == 0.0
    # the tables are separate: E_D moves with E_G (through sg) and with its own delta
    with torch.no_grad():
        gen_table.add_(1.0)
        delta.add_(0.5)
    assert torch.allclose(disc_word.weight, gen_table + 0.5)


@pytest.mark.parametrize("objective", ["mlm", "causal", "electra"])
def test_every_objective_trains_the_deberta_v3_arch(shards, tmp_path, objective):
    result = tiny(shards, tmp_path / "run", arch="deberta-v3", objective=objective, steps=2,
                  eval_every=2, save_every=0).run()
    assert result["step"] == 2 and result["eval"]["loss"] == result["eval"]["loss"]  # finite
    model = load(tmp_path / "run" / "model")
    assert model.config.relative_attention == ("c2p", "p2c") and model.config.position == "none"
    if objective == "electra":
        assert 0.0 <= result["eval"]["disc_auc"] <= 1.0


def test_gdes_resumes_exactly_and_saves_the_materialised_table(shards, tmp_path):
    def config(out, **more):
        return tiny_config(shards, out, arch="deberta-v3", objective="electra",
                           embedding_sharing="gdes", dropout=0.1, steps=4, save_every=2,
                           eval_every=2, **more)

    full, cut = tmp_path / "full", tmp_path / "cut"
    trainer = pretrainer(*config(full))
    trainer.run()
    pretrainer(*config(cut)).run(stop_at=2)
    pretrainer(*config(cut, resume=True)).run()
    expected, got = losses(full), losses(cut)
    assert sorted(got) == [1, 2, 3, 4]
    for step in (3, 4):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    for name in ("model", "generator"):
        assert (full / name / "model.safetensors").read_bytes() == \
            (cut / name / "model.safetensors").read_bytes()
    # the saved discriminator is a plain DeBERTa-v3 detector holding E_G + delta
    disc = trainer.objective.discriminator
    delta = disc.encoder.embeddings.word.parametrizations.weight.original
    assert delta.detach().any()  # the delta trained
    saved = load(full / "model")
    want = trainer.objective.generator.encoder.embeddings.word.weight + delta
    assert torch.equal(saved.encoder.embeddings.word.weight, want.detach())
    assert saved.task == "replaced_token_detection"


def test_freezing_and_layer_decay_need_a_checkpoint_and_keep_it(shards, tmp_path):
    with pytest.raises(ValueError, match="--freeze-layers keep.*pass --init"):
        tiny(shards, tmp_path / "fresh", freeze_layers=1)
    with pytest.raises(ValueError, match="--arch deberta-v3 builds a fresh model"):
        PretrainRecipe(data=str(shards), init=str(tmp_path), arch="deberta-v3")
    with pytest.raises(ValueError, match="applies to --objective electra"):
        PretrainRecipe(data=str(shards), embedding_sharing="gdes")
    tiny(shards, tmp_path / "first", steps=1, save_every=0).run()
    start = load(tmp_path / "first" / "model")
    trainer = tiny(shards, tmp_path / "again", init=str(tmp_path / "first" / "model"),
                   steps=3, save_every=0, freeze_embeddings=True, freeze_layers=1,
                   layer_decay=0.5)
    assert {g["lr_scale"] for g in trainer.optimizer.param_groups} == {0.5, 1.0}
    trainer.run()
    after = load(tmp_path / "again" / "model")
    for name, p in start.named_parameters():
        same = torch.equal(p, dict(after.named_parameters())[name])
        assert same == name.startswith(("encoder.embeddings.", "encoder.layers.0.")), name
