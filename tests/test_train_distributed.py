"""torchrun with 2 gloo processes on CPU trains like one process with the same global batch."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train_loop import losses, synthetic_shards, tiny_config
from unmask.train.distributed import resolve_device
from unmask.train.pretrain import pretrainer

TORCHRUN = Path(sys.executable).with_name("torchrun")
SCRIPT = """
import json, sys
from unmask.train.pretrain import PretrainRecipe, pretrainer
from unmask.train.settings import Settings
recipe, settings = json.loads(sys.argv[1])
pretrainer(PretrainRecipe(**recipe), Settings(**settings)).run()
"""


@pytest.mark.skipif(not TORCHRUN.is_file(), reason="needs torchrun next to the interpreter")
def test_two_gloo_ranks_match_one_process(tmp_path):
    data = synthetic_shards(tmp_path / "data")
    # No dropout: each rank draws its own dropout masks, which one process cannot mimic.
    one = tiny_config(data, tmp_path / "one", batch_size=8, steps=3, dropout=0.0,
                      eval_every=3, save_every=3)
    pretrainer(*one).run()
    two = tiny_config(data, tmp_path / "two", batch_size=4, steps=3, dropout=0.0,
                      eval_every=3, save_every=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([str(TORCHRUN), "--nproc-per-node", "2", "--master-port", "29517",
                    "--no-python", sys.executable, "-c", SCRIPT, json.dumps([dataclasses.asdict(two[0]), two[1].to_dict()])],
                   check=True, env=env, timeout=240, capture_output=True)
    a, b = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-4), step
    eval_a, eval_b = (
        [json.loads(line) for line in (p / "metrics.jsonl").read_text().splitlines()
         if json.loads(line)["kind"] == "eval"][-1] for p in (tmp_path / "one", tmp_path / "two"))
    assert eval_b["loss"] == pytest.approx(eval_a["loss"], rel=1e-4)


@pytest.mark.parametrize(("name", "message"), [
    ("tpu9", "unknown device 'tpu9': use auto, cpu, cuda or cuda:N"),
    ("cuda", "this torch build has no CUDA" if not torch.backends.cuda.is_built()
     else "cuda" if not torch.cuda.is_available() else None),
])
def test_a_bad_device_is_one_clear_line(name, message):
    if message is None:
        pytest.skip("a GPU is there")
    with pytest.raises(ValueError, match=message):
        resolve_device(name)
    assert resolve_device("cpu").type == "cpu"
