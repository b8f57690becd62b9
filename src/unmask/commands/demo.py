"""`unmask demo`: the main job."""

from __future__ import annotations


def cmd_demo(args) -> int:
    from unmask.demo import tour

    tour()
    return 0


def register(sub) -> None:
    demo = sub.add_parser("demo", help="a tour of attention masks and MLM corruption")
    demo.set_defaults(func=cmd_demo)
