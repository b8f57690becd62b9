"""Fine-tuning speed of the two encoder layouts, padded vs unpadded, on unmask's own loop.

`unmask finetune` runs the unpadded layout (tasks/finetune.py); this is the measurement behind
that choice. For each task, bench_finetune's calibration (its recipe, length-grouped batches of
32, the first --batches batches of the training set, timed on a warmed-up second run) runs
--rounds times per layout, alternating which goes first. Every encoder forward call is made to
run the layout under test. Both layouts give the same results (tests/test_model.py), so
only the speed is compared: examples/s per round and the ratio of the medians.

    .venv/bin/python benchmarks/bench_finetune_layouts.py [--tasks sst2,wnut17,squad,stsb]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import bench_finetune as bf
from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="sst2,wnut17,squad,stsb", help="comma-separated tasks")
    p.add_argument("--batches", type=int, default=16, help="batches of 32 per calibration")
    p.add_argument("--rounds", type=int, default=3, help="calibrations per layout and task")
    args = p.parse_args()
    import unmask.model

    forward = unmask.model.Encoder.forward
    under_test = ["padded"]

    def forced(self, *a, **k):  # the layout under test, whatever the loop chose
        k["layout"] = under_test[0]
        return forward(self, *a, **k)

    unmask.model.Encoder.forward = forced
    bf.CALIBRATION_BATCHES = args.batches
    print("| task | padded examples/s | unpadded examples/s | unpadded / padded (medians) |")
    print("|---|---|---|---|")
    for name in args.tasks.split(","):
        task, train, _ = bf.load_task(name)
        task.fit_labels(train, "train")
        rates: dict[str, list[float]] = {"padded": [], "unpadded": []}
        for r in range(args.rounds):
            for layout in ("padded", "unpadded") if r % 2 == 0 else ("unpadded", "padded"):
                under_test[0] = layout
                with tempfile.TemporaryDirectory() as out:
                    rates[layout].append(bf.calibrate_unmask(name, task, train, Path(out)))
        pad, unpad = (statistics.median(rates[k]) for k in ("padded", "unpadded"))
        shown = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in rates.items()}
        print(f"| {name} | {pad:.1f} [{shown['padded']}] | {unpad:.1f} [{shown['unpadded']}] "
              f"| {unpad / pad:.2f}x |", flush=True)
    print(describe())


if __name__ == "__main__":
    main()
