"""`python -m ganfast` is `python -m ganfast.train`, plus two commands about the kernels:

    python -m ganfast info [--json]     what is loaded: versions, kernels' origin, ISA, CUDA, flags
    python -m ganfast build [--force]   compile the kernels for this torch now (into the cache),
                                        showing the compiler's whole output; retries a compile
                                        that failed before; --force recompiles a good build
"""
import json
import sys


def _info(argv) -> int:
    import ganfast

    info = ganfast.info()
    if "--json" in argv:
        print(json.dumps(info, indent=1))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            if isinstance(value, (list, dict)):
                value = json.dumps(value)
            print(f"{key:<{width}}  {value}")
    return 0


def _build_now(argv) -> int:
    import ganfast  # noqa: F401  (the import itself may already load or compile the kernels)
    from ganfast import _build, _ext

    root = _build.source_root()
    if root is None:
        print("ganfast: this install has no C++ sources to compile", file=sys.stderr)
        return 1
    rt = _build.runtime()
    try:
        desc = _build.describe(root, rt)
        library, stamp, compiled = _build.jit_library(root, desc, rt, say=_ext.say, force="--force" in argv,
                                                      retry=True, verbose=True)
    except (_build.BuildUnavailable, _build.BuildFailed) as exc:
        print(f"ganfast: {exc}", file=sys.stderr)
        return 1
    print(f"ganfast: kernels {'compiled' if compiled else 'already built'}: {library}")
    if not _ext.AVAILABLE:
        print("ganfast: they load from the next `import ganfast` on", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["info"]:
        return _info(argv[1:])
    if argv[:1] == ["build"]:
        return _build_now(argv[1:])
    from ganfast.app.cli import main as train_main

    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
