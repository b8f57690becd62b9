"""Settings: every number checked against its meaning, one set of flags for both commands."""

from __future__ import annotations

import argparse

import pytest

from unmask.train.settings import Settings, add_arguments, from_args


@pytest.mark.parametrize(("field", "value", "message"), [
    ("clip", -1.0, "clip must be > 0 (the max gradient norm) or 0"),
    ("warmup", -1.0, "warmup must be >= 0"),
    ("warmup", 2.5, "a whole number of steps"),
    ("lr", 0.0, "lr must be > 0"),
    ("lr", float("nan"), "lr must be > 0"),
    ("steps", 0, "steps must be >= 1"),
    ("minutes", -2.0, "minutes must be > 0"),
    ("epochs", 0.0, "epochs must be > 0"),
    ("accumulate", 0, "accumulate must be >= 1"),
    ("eval_every", -1, "eval_every must be >= 0"),
    ("keep", 0, "keep must be >= 1"),
    ("patience", -1, "patience must be >= 0"),
    ("betas", (0.9, 1.0), "betas must be two numbers in"),
    ("dtype", "fp16", "dtype must be one of"),
])
def test_bad_numbers_are_refused_with_their_meaning(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings(**{"steps": 10, field: value})


def test_a_run_needs_a_length_and_not_both_resume_and_overwrite():
    with pytest.raises(ValueError, match="give the run a length"):
        Settings()
    with pytest.raises(ValueError, match="not both"):
        Settings(steps=1, resume=True, overwrite=True)
    assert Settings(steps=1, clip=0).clip == 0  # 0 = off is allowed


def test_flags_come_from_the_fields_with_help_and_per_command_defaults():
    parser = argparse.ArgumentParser()
    add_arguments(parser, lr=5e-5, out=None)
    assert all(a.help for a in parser._actions if a.dest != "help")
    args = parser.parse_args(["--out", "o", "--steps", "3", "--betas", "0.9", "0.99",
                              "--no-progress", "--resume"])
    s = from_args(args)
    assert (s.lr, s.steps, s.betas, s.progress, s.resume) == (5e-5, 3, (0.9, 0.99), False, True)
    with pytest.raises(SystemExit):  # --out required when its default is None
        parser.parse_args(["--steps", "3"])
    assert Settings.finetuning(out="x").betas == (0.9, 0.999)
