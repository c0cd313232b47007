"""notebooks/audit_walkthrough.ipynb: committed with outputs cleared, and it executes without error.

The kernel is this test's own interpreter (the venv's python), registered as a temporary kernelspec,
so the notebook runs against the checked-out prefaudit whatever Jupyter kernels the machine has.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "audit_walkthrough.ipynb"
KERNEL = "prefaudit-test-venv"


def test_committed_with_outputs_cleared():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
def test_walkthrough_executes(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "prefaudit test (venv)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    out = tmp_path / "out"
    monkeypatch.setenv("PREFAUDIT_WALKTHROUGH_OUT", str(out))

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, kernel_name=KERNEL, timeout=600, allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    client.execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    shared_hh = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless-test" / "harmless-base-test.jsonl.gz"
    assert ("harmless-base-test" in text) == shared_hh.exists()  # real data when present, else sample_data
    # the notebook shows the reprs (HTML) and plots (images) it promises
    html = [o for o in outputs if "data" in o and "text/html" in o["data"]]
    images = [o for o in outputs if "data" in o and "image/png" in o["data"]]
    assert len(html) >= 8 and len(images) >= 6
    report = out / "hh_harmless_audit.html"
    assert report.exists() and 'id="verdict"' in report.read_text(encoding="utf-8")
