"""The layer contracts really bite: a forbidden import makes lint-imports fail."""

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_copy(tmp_path: Path, module: str, source: str) -> subprocess.CompletedProcess[str]:
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    (tmp_path / "src" / "callscope" / Path(*module.split(".")[1:])).with_suffix(".py").write_text(
        source, encoding="utf-8"
    )
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_django_in_protocol_breaks_the_contract(tmp_path):
    result = lint_copy(tmp_path, "callscope.protocol.bad", "import django.db\n")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout


def test_clock_in_assembly_breaks_the_contract(tmp_path):
    result = lint_copy(tmp_path, "callscope.assembly.bad", "import time\n")
    assert result.returncode != 0


def test_upward_import_breaks_the_layers(tmp_path):
    result = lint_copy(tmp_path, "callscope.store.bad", "import callscope.console.views\n")
    assert result.returncode != 0
