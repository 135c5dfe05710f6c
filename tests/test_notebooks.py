"""The notebooks run top to bottom in a real Jupyter kernel against a sandbox, without errors.

Every figure they draw is saved as ``test-artifacts/<notebook>-<n>.png`` (as the browser test
saves its screenshot), so that the charts can be looked at after a run.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser_support import ARTIFACTS, NOTEBOOKS, PAGE_SIZE, notebook_env
from nbclient import NotebookClient

from jetti_frames.sandbox import Sandbox

TOKEN = "notebook-test-t0ken-3a7d"
NAMES = ["01-quickstart.ipynb", "02-dropship-report.ipynb", "03-query-form.ipynb",
         "04-mirror.ipynb"]
#: Figures each notebook draws at least: 02 has a provider scorecard, monthly spend by status
#: and the late trend.
FIGURES = {"02-dropship-report.ipynb": 3}
PNG = b"\x89PNG\r\n\x1a\n"


def save_figures(nb: nbformat.NotebookNode, name: str) -> list[Path]:
    """Write every ``image/png`` output of an executed notebook to ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = name.removesuffix(".ipynb")
    for old in ARTIFACTS.glob(f"{stem}-*.png"):
        old.unlink()
    paths = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                path = ARTIFACTS / f"{stem}-{len(paths) + 1}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                paths.append(path)
    return paths


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Kernels inherit the test process environment: point ``JETTI_*`` at a sandbox."""
    cache = tmp_path_factory.mktemp("nb-cache")
    with Sandbox(purchases=3000, rate="off", max_limit=PAGE_SIZE, tokens=(TOKEN,)) as sandbox:
        env = notebook_env(sandbox.base_url, TOKEN, cache)
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            yield env
        finally:
            os.environ.clear()
            os.environ.update(saved)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name: str, kernel_env: dict[str, str],
                                     tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "fake-secret-" not in nbformat.writes(nb)  # no credential in any output
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert kernel_env["JETTI_BASE_URL"] in text or name.startswith("03")
    figures = save_figures(nb, name)
    assert len(figures) >= FIGURES.get(name, 0)
    assert all(path.read_bytes().startswith(PNG) for path in figures)
    if name.startswith("03"):
        views = [o for o in outputs
                 if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        assert len(views) == 1
