"""What named tokens cost a request (issue 26): ``python bench/tokens.py [--lines 1 10 100]``.

CPU time (``time.process_time``, robust on a busy machine) per call of the token book's look-up
(winserve/tokens.py) for: the ``token`` setting alone (one constant-time comparison, as before
named tokens); a named token already seen (its HMAC found in the cache: what every request of
a known caller costs); a named token seen for the first time (the walk of the file's lines: once
per token and server start); a wrong token (the walk, every time: what a guesser makes the server
spend, ~100 a minute past the throttle); and ``auth.caller_of`` (who called, asked by the access
log and the prediction log on every request). Prints µs per call and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from winserve import tokens
from winserve.web import auth


def per_call(work: Callable[[], object], calls: int) -> float:
    """µs of CPU per call of ``work``, the best of three rounds of ``calls``."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(calls):
            work()
        best = min(best, time.process_time() - start)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    single = tokens.TokenBook(None, single="the single token setting")
    print(f"token setting alone: {per_call(lambda: single.find('wrong'), args.calls):.2f} µs")
    environ = {"REMOTE_ADDR": "10.0.0.2"}
    caller = per_call(lambda: auth.caller_of(environ, True), args.calls)
    print(f"auth.caller_of (no token sent): {caller:.2f} µs")
    with tempfile.TemporaryDirectory() as folder:
        for lines in args.lines:
            path = Path(folder) / f"tokens-{lines}.toml"
            made = [tokens.add(path, f"name{n}") for n in range(lines)]
            book = tokens.TokenBook(path)
            last = made[-1]
            book.find(last)
            known = per_call(lambda: book.find(last), args.calls)  # noqa: B023
            wrong = per_call(lambda: book.find("not a token"), max(100, args.calls // lines))  # noqa: B023

            def first() -> object:
                book._known.clear()  # a first sight of the token: the walk  # noqa: B023
                return book.find(last)  # noqa: B023

            walk = per_call(first, max(100, args.calls // lines))
            print(
                f"{lines:4d} lines: known token {known:.2f} µs, first sight {walk:.2f} µs, "
                f"wrong token {wrong:.2f} µs"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
