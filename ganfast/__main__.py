"""`python -m ganfast` is `python -m ganfast.train` (ganfast.app.cli)."""
import sys

from ganfast.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
