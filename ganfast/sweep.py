"""`python -m ganfast.sweep` runs the sweep CLI (ganfast.app.sweep.cli). An entry point only:
nothing imports this module (the sweep lives in ganfast.app.sweep)."""
if __name__ == "__main__":
    import sys

    from ganfast.app.sweep.cli import main

    sys.exit(main())
