"""The dashboard's pure transforms (wire JSON -> Plotly traces), tested with node's own runner.

The tests live beside the modules (frontend/js/tests/*.test.js) so they import exactly the
files the browser loads; this wrapper makes `python -m pytest` run them.
"""

import shutil
import subprocess
from pathlib import Path

JS = Path(__file__).resolve().parents[2] / "frontend" / "js"
NODE = shutil.which("node")


def test_frontend_transforms_pass_node_test_runner():
    assert NODE, "node is not installed: .ci/system-packages installs Debian's nodejs"
    files = sorted(str(p.relative_to(JS)) for p in (JS / "tests").glob("*.test.js"))
    assert files, "no frontend tests found"
    proc = subprocess.run(
        [NODE, "--test", *files], cwd=JS, capture_output=True, text=True, timeout=60
    )
    summary = [line for line in proc.stdout.splitlines() if line.startswith("# ")]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in summary, summary
