"""The README's Python examples run as written (docs that work when pasted)."""
import re
from pathlib import Path

import pytest

import ganfast

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(code, tmp_path, monkeypatch, capsys):
    if ("train_fused" in code or "ganfast.train(" in code) and not ganfast.extension_available():
        pytest.skip("the example trains with the fused engine, which needs the compiled extension")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def test_readme_commands_name_real_presets_and_flags():
    """Every `python -m ganfast.train` line in the README parses and names a shipped preset."""
    from ganfast.app.cli import parser
    from ganfast.app.config import list_presets

    lines = [m.split("#")[0].split() for m in re.findall(r"^python -m ganfast\.train.*$", README.read_text(), re.M)]
    assert len(lines) >= 8
    for words in lines:
        args = parser().parse_args(words[3:])
        if args.preset:
            assert args.preset in list_presets(), words
