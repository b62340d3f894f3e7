"""Entry point: adds ``hyperscout ui`` and ``hyperscout report`` (heavy imports happen inside the commands)."""

from __future__ import annotations

import argparse
from typing import Any

from hyperscout import hookimpl

DEFAULT_PORT = 8642


@hookimpl
def hyperscout_register_commands(subparsers: Any) -> None:
    ui = subparsers.add_parser("ui", help="a web app over the store: live studies, launch form, actions")
    ui.add_argument("--storage", default=".hyperscout", help="directory of the store (default .hyperscout)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1); any other address requires the printed token")
    ui.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 picks a free one)")
    ui.set_defaults(func=_ui)

    rp = subparsers.add_parser("report", help="one self-contained HTML file with a study's plots and tables")
    rp.add_argument("study")
    rp.add_argument("-o", "--output", default=None, help="HTML path (default STUDY.html)")
    rp.add_argument("--storage", default=".hyperscout")
    rp.set_defaults(func=_report)


def _ui(args: argparse.Namespace) -> int:
    from hyperscout_ui.server import serve

    return serve(args.storage, args.host, args.port)


def _report(args: argparse.Namespace) -> int:
    from hyperscout_ui.report import write_report

    out = write_report(args.storage, args.study, args.output)
    print(f"wrote {out}")
    return 0
