"""The package's shape (docs/design.md, "Layout"): the library never imports the application, no
module imports another's private names, there are no import loops, `import ganfast` loads no
app module, and `ganfast.train` is the function while `python -m ganfast.train` is the CLI."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import ganfast

PACKAGE = Path(ganfast.__file__).resolve().parent


def _modules() -> dict:
    """module name -> path, for every .py file of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
ENTRY_FILES = {"ganfast.train", "ganfast.__main__"}  # `python -m` entry points: they call the app's CLI


def _imports(path: Path) -> list:
    """(imported module, [names]) of every import statement in the file (anywhere in it)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _targets(module: str, names: list) -> set:
    """The ganfast modules an import statement loads."""
    found = {module} if module in MODULES else set()
    found |= {f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES}
    return found


def test_the_library_never_imports_the_app():
    for name, path in MODULES.items():
        if name.startswith("ganfast.app") or name in ENTRY_FILES:
            continue
        for module, names in _imports(path):
            loaded = _targets(module, names) | {module}
            assert not any(m == "ganfast.app" or m.startswith("ganfast.app.") for m in loaded), \
                f"{name} imports {module} {names}"


def test_no_module_imports_the_entry_file():
    for name, path in MODULES.items():
        for module, names in _imports(path):
            assert "ganfast.train" not in _targets(module, names), f"{name} imports the ganfast.train entry file"


def test_no_private_names_across_modules():
    for name, path in MODULES.items():
        for module, names in _imports(path):
            if module.startswith("ganfast"):
                private = [n for n in names if n.startswith("_") and n not in ("_ext", "_build", "_C")]
                assert not private, f"{name} imports private names {private} from {module}"


def test_no_import_loops():
    graph = {name: set() for name in MODULES}
    for name, path in MODULES.items():
        for module, names in _imports(path):
            graph[name] |= {t for t in _targets(module, names) if t != name and t != "ganfast"}
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import loop: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_import_ganfast_loads_the_library_only():
    code = ("import sys, ganfast; app = sorted(m for m in sys.modules if m.startswith('ganfast.app')); "
            "assert not app, app; assert 'ganfast.train' not in sys.modules; "
            "assert callable(ganfast.train) and ganfast.train.__module__ == 'ganfast.app.api'; "
            "assert ganfast.load_preset('devnag').name == 'devnag'; print('ok')")
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("module", ["ganfast.train", "ganfast"])
def test_python_m_runs_the_cli_without_warnings(module):
    """runpy warns when the module it is about to run was imported already (the old double
    `train` module); -W error turns that into a failure."""
    proc = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", module, "--list-presets"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "RuntimeWarning" not in proc.stderr and proc.stdout.split()[0] == "cifar-conv"


def test_public_api():
    expected = {"Generator", "Discriminator", "MLP", "MLPSpec", "uniform", "normal", "noise", "GanSpec",
                "GanState", "init_state", "train_fused", "load_preset", "train"}
    assert expected <= set(ganfast.__all__) and expected <= set(dir(ganfast))
    for name in ganfast.__all__:
        assert getattr(ganfast, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        ganfast.nothing
