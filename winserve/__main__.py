"""``python -m winserve``."""

import multiprocessing
import sys

from winserve.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
