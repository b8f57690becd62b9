"""`unmask prepare`, `unmask pretrain` and `unmask demo` from the command line (in-process)."""

from __future__ import annotations

import gzip
import json

import pytest

from unmask.cli import main
from unmask.data import TokenShards

TEXT = ("The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
        "Early to bed and early to rise makes a man healthy, wealthy and wise. ") * 6


def corpus(folder):
    folder.mkdir()
    (folder / "a.txt").write_text(TEXT + "\n\n" + TEXT.upper())
    (folder / "old.txt").write_bytes(("Caf\xe9 cr\xe8me " + TEXT).encode("cp1252"))
    (folder / "b.jsonl").write_text("\n".join(json.dumps({"text": TEXT[i:]})
                                              for i in range(0, 300, 30)))
    with gzip.open(folder / "c.txt.gz", "wt") as f:
        f.write(TEXT)
    return folder


def test_prepare_reads_every_format_and_names_badly_encoded_files(tmp_path, capsys):
    src = corpus(tmp_path / "src")
    out = tmp_path / "shards"
    assert main(["prepare", str(src), "--out", str(out), "--vocab-size", "300",
                 "--documents", "blank_line", "--validation", "2"]) == 0
    printed = capsys.readouterr()
    assert "old.txt is not valid UTF-8" in printed.err
    assert "packing at seq_len 128" in printed.out and "efficiency" in printed.out
    train, val = TokenShards(out, "train"), TokenShards(out, "validation")
    assert train.num_documents + val.num_documents == 14  # 2 blocks + 1 + 10 records + 1
    assert val.num_documents == 2 and train.dtype.name == "uint16"


def test_pretrain_trains_resumes_and_saves_both_layouts(tmp_path, capsys):
    src, run = corpus(tmp_path / "src"), tmp_path / "run"
    common = ["pretrain", "--corpus", str(src), "--out", str(run), "--preset", "tiny",
              "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--validation",
              "2", "--log-every", "1", "--save-every", "2", "--eval-every", "2",
              "--no-progress", "--masking", "whole_word"]
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 2" in out and "done: 4 steps" in out
    assert (run / "model" / "tokenizer.json").is_file()
    assert (run / "hf" / "config.json").is_file() and (run / "hf" / "tokenizer.json").is_file()


def test_bad_input_gets_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["prepare", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="does not exist"):
        main(["pretrain", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "r"),
              "--steps", "1"])
    with pytest.raises(SystemExit, match="no prepared data to resume"):
        main(["pretrain", "--out", str(tmp_path / "never"), "--steps", "1", "--resume"])
    with pytest.raises(SystemExit, match="--steps N, --minutes M and/or --epochs E"):
        main(["pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r")])


def test_demo_pretrains_then_fills_in_blanks(tmp_path, capsys):
    assert main(["demo", "--minutes", "0.02", "--out", str(tmp_path / "demo"),
                 "--corpus-chars", "60000", "--vocab-size", "800", "--seq-len", "32",
                 "--batch-size", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Fill in the blank" in out and "Return the [MASK] of the list." in out
    assert (tmp_path / "demo" / "loss.png").is_file()
    assert main(["demo", "--tour"]) == 0
    assert "causal mask" in capsys.readouterr().out


def test_bad_run_settings_and_an_occupied_out_folder_are_refused(tmp_path, capsys):
    src, run = corpus(tmp_path / "src"), tmp_path / "run"
    common = ["pretrain", "--corpus", str(src), "--out", str(run), "--preset", "tiny",
              "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--no-progress"]
    for flags, message in ((["--clip", "-1"], "clip must be > 0"),
                           (["--warmup", "-1"], "warmup must be >= 0"),
                           (["--device", "tpu9"], "unknown device 'tpu9'"),
                           (["--seq-len", "100000"], "exceeds the 512 positions")):
        with pytest.raises(SystemExit, match=message):
            main([*common, "--steps", "1", *flags])
    assert main([*common, "--steps", "1"]) == 0
    with pytest.raises(SystemExit, match="already holds a run"):
        main([*common, "--steps", "1"])
    shards = tmp_path / "shards"
    assert main(["prepare", str(src), "--out", str(shards), "--vocab-size", "300"]) == 0
    with pytest.raises(SystemExit, match="already holds token shards"):
        main(["prepare", str(src), "--out", str(shards), "--vocab-size", "300"])
    assert main(["prepare", str(src), "--out", str(shards), "--vocab-size", "300",
                 "--overwrite"]) == 0


def test_the_recipe_is_checked_before_the_corpus_is_prepared(tmp_path):
    """A bad recipe stops before minutes of corpus preparation, not after them."""
    from unmask.cli import build_parser
    from unmask.commands.pretrain import run_pretraining

    run = tmp_path / "run"
    args = build_parser().parse_args(["pretrain", "--out", str(run), "--steps", "1",
                                      "--corpus-chars", "200000", "--no-progress"])
    args.eval_batches = -1  # callers of run_pretraining (and set_defaults) bypass argparse
    with pytest.raises(ValueError, match="eval_batches must be >= 0"):
        run_pretraining(args)
    assert not (run / "data").exists()


def test_pretrain_deberta_v3_with_gradient_disentangled_sharing(tmp_path, capsys):
    src, run = corpus(tmp_path / "src"), tmp_path / "run"
    common = ["pretrain", "--corpus", str(src), "--out", str(run), "--preset", "tiny",
              "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4", "--validation",
              "2", "--no-progress", "--steps", "2", "--eval-every", "2"]
    with pytest.raises(SystemExit, match="--freeze-layers keep.*pass --init"):
        main([*common, "--freeze-layers", "1"])
    with pytest.raises(SystemExit, match="applies to --objective electra, not mlm"):
        main([*common, "--embedding-sharing", "gdes"])
    assert main([*common, "--arch", "deberta-v3", "--objective", "electra",
                 "--embedding-sharing", "gdes"]) == 0
    out = capsys.readouterr().out
    assert "electra + gdes · tiny (deberta-v3)" in out and "discriminator accuracy" in out
    saved = json.loads((run / "model" / "unmask.json").read_text())
    assert saved["encoder"]["relative_attention"] == ["c2p", "p2c"]
    assert saved["task"] == "replaced_token_detection"
