"""`python -m ganfast.train` runs the CLI (ganfast.app.cli). An entry point only: nothing may
import this module, because `ganfast.train` is the function ganfast.app.api.train (runpy runs
this file without binding it as an attribute of the package)."""
if __name__ == "__main__":
    import sys

    from ganfast.app.cli import main

    sys.exit(main())
