"""Fine-tuning speed of two versions of unmask on this machine: a regression check.

bench_finetune.py compares unmask with the transformers Trainer; its absolute rates move with
the host (the development CPU varies between sessions), so a rate against an earlier day's run
mixes the code with the machine. This runs two commits in one session instead: each version
from its own git worktree (its src/ and its bench_finetune.py, whose load_task / train_unmask
every version since 2026-11-24 has), in alternating subprocesses, on the first EXAMPLES[task]
training examples of each task, 1 epoch, bench_finetune's recipe. The rate is examples / train
seconds (tokenization, model load and save included, the end evaluation not), as in
bench_finetune; each round's first run is dropped (oneDNN warm-up).

    .venv/bin/python benchmarks/bench_finetune_versions.py --base 218bb80 [--head HEAD]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe  # benchmarks/machine.py: the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {"sst2": 2048, "wnut17": 1024, "squad": 256, "stsb": 1024}

# Run inside a subprocess with one version's src/ and benchmarks/ first on sys.path.
CHILD = """
import sys, tempfile
from pathlib import Path
tree, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path[:0] = [tree + "/src", tree + "/benchmarks"]
import unmask, bench_finetune as bf
assert unmask.__file__.startswith(tree), unmask.__file__
task, train, _ = bf.load_task(name)
task.fit_labels(train, "train")
sample = train[:n]
for _ in range(2):  # the first warms up; the second is timed
    r = bf.train_unmask(name, task, sample, sample[:4], 1, 0, Path(tempfile.mkdtemp()))
print(n / r["train_s"])
"""


def rate(tree: Path, name: str, n: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), name, str(n)], cwd=tree,
                         capture_output=True, text=True, check=False)
    if out.returncode:
        sys.exit(f"{tree} {name}: failed\n{out.stderr[-3000:]}")
    return float(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="the earlier commit")
    p.add_argument("--head", default="HEAD", help="the later commit (default HEAD)")
    p.add_argument("--tasks", default=",".join(EXAMPLES), help="comma-separated tasks")
    p.add_argument("--rounds", type=int, default=2, help="runs per version and task")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # each worktree finds the data beside it (../shared), as the main checkout does
        (Path(tmp) / "shared").symlink_to(ROOT.parent / "shared")
        trees = {"base": Path(tmp) / "base", "head": Path(tmp) / "head"}
        for label, commit in (("base", args.base), ("head", args.head)):
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                            str(trees[label]), commit], check=True)
        try:
            print(f"| task | examples | {args.base} examples/s | {args.head} examples/s "
                  f"| {args.head} / {args.base} (medians) |")
            print("|---|---|---|---|---|")
            for name in args.tasks.split(","):
                rates = {"base": [], "head": []}
                for r in range(args.rounds):
                    for label in ("base", "head") if r % 2 == 0 else ("head", "base"):
                        rates[label].append(rate(trees[label], name, EXAMPLES[name]))
                base, head = (statistics.median(rates[k]) for k in ("base", "head"))
                shown = {k: ", ".join(f"{x:.1f}" for x in v) for k, v in rates.items()}
                print(f"| {name} | {EXAMPLES[name]} | {base:.1f} [{shown['base']}] "
                      f"| {head:.1f} [{shown['head']}] | {head / base:.2f}x |", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(tree)], check=False)
    print(describe())


if __name__ == "__main__":
    main()
