"""`kubeaws render` calls no AWS API, so it imports no AWS SDK: botocore and boto3 stay out of sys.modules
(botocore alone cost render ~40% of its CPU and ~8 MiB). Run in a fresh interpreter: the test process itself has
imported botocore long before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, REPO

PROGRAM = """
import sys
from kubeaws.cli.main import main
sys.argv = ["kubeaws", "render", "-f", sys.argv[1], "-d", sys.argv[2]]
try:
    main()
except SystemExit as exc:
    assert not exc.code, f"render exited {exc.code}"
sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("botocore", "boto3"))
print("SDK:", ",".join(sdk[:5]) or "none")
"""


def test_render_imports_no_aws_sdk(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(EXAMPLES / "ha.yaml"), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "SDK: none" in proc.stdout, proc.stdout
    assert any(out.rglob("*")), "render wrote nothing"
