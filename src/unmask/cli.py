"""The `unmask` command.

Every module in `unmask/commands/` adds its subcommands through `register(subparsers)`; heavy
imports happen inside each command so that `unmask --help` stays instant. Run `unmask --help`
for the list.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import unmask.commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unmask", description="Masked language models: masks, corruption, encoders."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(unmask.commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"unmask.commands.{info.name}").register(sub)
    _add_threads(sub)
    return parser


def _add_threads(sub: argparse._SubParsersAction) -> None:
    """--threads on every command (nested ones too), applied once in main()."""
    from unmask.hardware import check_threads

    def threads(value: str) -> int:
        try:
            return check_threads(value, "--threads")
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    for p in sub.choices.values():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for a in nested:
                _add_threads(a)
        elif not any("--threads" in a.option_strings for a in p._actions):
            p.add_argument("--threads", type=threads, default=None,
                           help="CPU threads for torch (default $UNMASK_THREADS, else all cores)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from unmask.hardware import set_threads

        set_threads(getattr(args, "threads", None))
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `unmask ... | head`: the reader left; stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError) as e:
        # The library's errors on bad input name the problem and the fix: print that, not a
        # traceback. UNMASK_DEBUG=1 shows the traceback when the error is ours.
        if os.environ.get("UNMASK_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
