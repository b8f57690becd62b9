"""Subcommands of `unmask`: each module defines `register(subparsers)` (see unmask.cli)."""
