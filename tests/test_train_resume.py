"""Checkpoints: damaged files fall back to the newest intact checkpoint, naming the file;
cleanup deletes only this run's checkpoints, by step number; a kill mid-write is harmless."""

from __future__ import annotations

import json
import shutil

import pytest

from test_train_loop import losses, synthetic_shards, tiny
from unmask.train import resume as ckpt
from unmask.train.resume import CheckpointWriter, complete_checkpoints, latest_checkpoint


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return synthetic_shards(tmp_path_factory.mktemp("shards"))


@pytest.mark.parametrize("damage", ["state.json", "state.safetensors", "rng-rank0.safetensors"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_one_before(shards, tmp_path, capsys,
                                                                  damage):
    full, run = tmp_path / "full", tmp_path / "run"
    tiny(shards, full, steps=6, save_every=2).run()
    tiny(shards, run, steps=6, save_every=2).run(stop_at=4)
    file = run / "checkpoints" / "step-00000004" / damage
    if damage.startswith("rng"):
        file.unlink()
    else:
        file.write_bytes(file.read_bytes()[: len(file.read_bytes()) // 2])  # truncated
    resumed = tiny(shards, run, steps=6, save_every=2, resume=True)
    err = capsys.readouterr().err
    assert resumed.step == 2 and str(file) in err
    assert ("is missing" if damage.startswith("rng") else "is damaged") in err
    resumed.run()
    assert losses(run) == pytest.approx(losses(full), abs=1e-6)  # same run, from step 2


def test_resuming_with_another_number_of_processes_says_so(shards, tmp_path):
    run = tmp_path / "run"
    tiny(shards, run, steps=4, save_every=2).run(stop_at=2)
    state = run / "checkpoints" / "step-00000002" / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "world_size": 2}))
    with pytest.raises(ValueError, match="written by 2 process"):
        tiny(shards, run, steps=4, resume=True)


def test_cleanup_keeps_other_runs_and_sorts_by_step_number(shards, tmp_path):
    run = tmp_path / "run"
    trainer = tiny(shards, run, steps=3, save_every=1, keep=2)
    trainer.run()
    assert [p.name for p in complete_checkpoints(run)] == ["step-00000002", "step-00000003"]
    foreign = run / "checkpoints" / "step-00000050"
    shutil.copytree(run / "checkpoints" / "step-00000002", foreign)
    state = foreign / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "run_id": "another run"}))
    big = CheckpointWriter(run, 100_000_000, keep=1, run_id=trainer.run_id, tag=1)
    big.begin(trainer.objective.models(), trainer.optimizer, {"step": 100_000_000})
    big.write_rng(0)
    big.commit()  # 100000000 sorts before 00000003 by name, after it by number
    names = [p.name for p in complete_checkpoints(run)]
    assert names == ["step-00000050", "step-100000000"]
    assert latest_checkpoint(run).name == "step-100000000"


def test_a_kill_while_writing_leaves_a_tmp_folder_that_is_ignored(shards, tmp_path,
                                                                 monkeypatch):
    run = tmp_path / "run"
    tiny(shards, run, steps=4, save_every=2).run(stop_at=2)
    resumed = tiny(shards, run, steps=4, save_every=2, resume=True)

    def killed(tensors, path):
        raise KeyboardInterrupt("killed")  # after the folder exists, before its files do

    monkeypatch.setattr(ckpt, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        resumed.run()
    monkeypatch.undo()
    (tmp,) = (run / "checkpoints").glob("step-00000004.tmp-*")
    assert tmp.name.endswith(f"-{resumed._tag}")
    again = tiny(shards, run, steps=4, save_every=2, resume=True)
    assert again.step == 2
    again.run()
    assert not list((run / "checkpoints").glob("*.tmp*"))
