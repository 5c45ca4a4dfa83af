"""``python -m winserve``."""

import multiprocessing
import os
import sys

if getattr(sys.modules.get("winserve"), "__file__", None) is None:
    # `-m` put the current folder first on sys.path, and a folder named `winserve` in it (a
    # clone of winserve in the home folder, beside an editable install) was taken for the
    # package: a namespace package without __version__ (issue 24). Drop the current folder
    # (the spawned model hosts inherit sys.path) and import the installed package.
    here = os.path.normcase(os.getcwd())  # Windows: C:\Users\x and c:\users\x are one
    sys.path[:] = [p for p in sys.path if os.path.normcase(os.path.abspath(p or ".")) != here]
    del sys.modules["winserve"]

from winserve.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
