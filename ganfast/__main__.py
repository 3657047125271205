"""`python -m ganfast` is `python -m ganfast.train`."""
import sys

from ganfast.train import main

if __name__ == "__main__":
    sys.exit(main())
