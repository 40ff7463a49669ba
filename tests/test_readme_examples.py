"""Every ```python block of every README runs as written (``nox -s readme``).

A README example that no longer runs is a broken promise to a new user; this test
executes each block in a fresh namespace, in a temporary working directory, in the
order the blocks appear in its README (later blocks may use names from earlier ones).
A block fenced as ```python notest (a snippet that needs the user's own files, such as a
trained checkpoint) is shown but not run; every package README keeps at least one block
that runs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_READMES = sorted(ROOT.glob("packages/*/README.md"))
BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(readme: Path) -> list[str]:
    """The ```python blocks of ``readme`` in order, less those marked ``notest``."""
    text = readme.read_text(encoding="utf-8")
    return [code for info, code in BLOCK.findall(text) if "notest" not in info.split()]


def test_block_parser_finds_fenced_python() -> None:
    text = (
        "intro\n```python\nx = 1\n```\n```bash\nls\n```\n```python\ny = x + 1\n```\n"
        "```python notest\nload('my/run.pt')\n```\n"
    )
    path = ROOT / ".pytest_cache" / "readme_probe.md"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    assert python_blocks(path) == ["x = 1\n", "y = x + 1\n"]


def test_every_package_readme_has_a_python_example() -> None:
    assert PACKAGE_READMES, "no package README found"
    missing = [str(p.relative_to(ROOT)) for p in PACKAGE_READMES if not python_blocks(p)]
    assert not missing, f"package READMEs without a ```python example: {missing}"


@pytest.mark.parametrize("readme", PACKAGE_READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_python_blocks_run(readme: Path, tmp_path: Path) -> None:
    blocks = python_blocks(readme)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        for number, block in enumerate(blocks, start=1):
            code = compile(block, f"{readme.relative_to(ROOT)}[python block {number}]", "exec")
            exec(code, namespace)
    finally:
        os.chdir(cwd)
