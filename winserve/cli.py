"""The command line: ``winserve [MODEL] [options]``, ``winserve check [MODEL]`` and
``winserve token add|list|remove`` (named tokens, issue 26).

``main(argv) -> int`` parses, builds the settings and hands off; it never calls ``sys.exit``,
so tests can drive it. Bad settings print one line and return 2.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from winserve import __version__, settings
from winserve.errors import SettingsError

DESCRIPTION = (
    "Serve a trained model (scikit-learn, joblib/pickle, or any object with "
    "predict) as a web page and a JSON API. Without a model, serves a demo."
)
EPILOG = (
    "Also: 'winserve check MODEL' loads the model as serving would, runs one sample "
    "prediction and exits 0 or 1; 'winserve token add NAME [--owner]', 'token list' and "
    "'token remove NAME' manage named tokens. Every option can also be set as "
    "WINSERVE_<NAME> in the environment or in winserve.toml."
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise SettingsError(f"{message} (see: winserve --help)")


def build_parser(prog: str = "winserve") -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog, description=DESCRIPTION, epilog=EPILOG, argument_default=argparse.SUPPRESS
    )
    parser.add_argument("--version", action="version", version=f"winserve {__version__}")
    for spec in settings.table():
        meta = spec.metadata
        if meta["positional"]:
            parser.add_argument(spec.name, nargs="?", help=meta["help"], metavar=meta["metavar"])
        elif meta["convert"] is settings.to_bool:
            parser.add_argument(
                meta["cli"],
                dest=spec.name,
                help=meta["help"],
                action=argparse.BooleanOptionalAction,
            )
        else:
            parser.add_argument(
                meta["cli"],
                dest=spec.name,
                help=meta["help"],
                metavar=meta["metavar"] or spec.name.upper(),
                action="append" if meta.get("repeat") else "store",
            )
    return parser


def parse(argv: Sequence[str], prog: str = "winserve") -> dict[str, Any]:
    values = vars(build_parser(prog).parse_args(list(argv)))
    return {k: v for k, v in values.items() if v is not None}


def never_fail_to_print() -> None:
    """A Windows console or pipe in cp1252 cannot show every character a model's name or a
    message may hold ("→", "…"); replace those rather than fail (or lose the ready banner)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and (stream.encoding or "").lower() not in ("utf-8", "utf8"):
            reconfigure(errors="replace")


def token_command(args: Sequence[str], cwd: Path | None = None) -> int:
    """``winserve token add NAME [--owner] | list | remove NAME`` (issue 26): the named tokens
    of the tokens file a server started here would read."""
    from winserve import tokens

    parser = _Parser(prog="winserve token", description="Named tokens for callers.")
    parser.add_argument("--tokens-file", type=Path, metavar="FILE", help="default: as serving")
    actions = parser.add_subparsers(dest="action", required=True, metavar="add|list|remove")
    add = actions.add_parser("add", help="make a token for NAME and print it once")
    add.add_argument("name")
    add.add_argument("--owner", action="store_true", help="may do everything, as you")
    actions.add_parser("list", help="the names and their roles (never a token)")
    remove = actions.add_parser("remove", help="NAME's token stops working (also when running)")
    remove.add_argument("name")
    try:
        chosen = parser.parse_args(list(args))
        path = settings.command_tokens_path(chosen.tokens_file, os.environ, cwd or Path.cwd())
        if chosen.action == "add":
            role = tokens.OWNER if chosen.owner else tokens.USER
            earlier = any(x.name == chosen.name for x in tokens.read(path))
            token = tokens.add(path, chosen.name, role)
            print(token)
            if earlier:
                print(f"winserve: {chosen.name}'s earlier token no longer works", file=sys.stderr)
            print(
                f"winserve: the {role} token of {chosen.name!r} is above; it is shown only "
                f"this once (only its hash is kept, in {path}). Give it to {chosen.name}: "
                "programs send 'Authorization: Bearer <token>', people type it on the page. "
                "From now on every caller needs a token (a server already running without one "
                "keeps needing none until restarted).",
                file=sys.stderr,
            )
        elif chosen.action == "list":
            lines = tokens.read(path)
            for line in lines:
                print(f"{line.name}\t{line.role}")
            print(f"winserve: {len(lines)} named tokens in {path}", file=sys.stderr)
        elif not tokens.remove(path, chosen.name):
            print(f"winserve: no token named {chosen.name!r} in {path}", file=sys.stderr)
            return 1
    except SettingsError as exc:
        print(f"winserve: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    never_fail_to_print()
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["token"]:
        return token_command(args[1:])
    command = "check" if args[:1] == ["check"] else "serve"
    if command == "check":
        args = args[1:]
    try:
        chosen = settings.load(parse(args, "winserve check" if command == "check" else "winserve"))
    except SettingsError as exc:
        print(f"winserve: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)
    if command == "check":
        from winserve.check import check

        return check(chosen)
    from winserve.server import serve

    return serve(chosen)


def run() -> None:
    """Console-script entry point."""
    multiprocessing.freeze_support()
    # The current folder is not put on sys.path here (it was, first, for `--factory
    # mymodule:build`): the spawned model hosts inherit sys.path, so a folder named `winserve`
    # in it (a clone of winserve in the home folder) was imported by every host instead of the
    # installed package, and no model loaded (issue 24). host/loading.load_factory adds the
    # current folder, at the end, only where a factory is resolved.
    sys.exit(main())
