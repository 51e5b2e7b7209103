"""Resuming guards shared by the benchmark scripts.

A script that resumes (skips the rows already in its output folder) identifies a row by a few
settings only (model, split, epochs, ...). The others go into ``settings.json`` in the folder,
and a later run with different values is refused rather than mixed into the same tables.
A fit cut by Ctrl-C must stop the script, not be written as a finished row.
Row tables and ``settings.json`` are written whole and renamed into place (``write_csv``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path


def stop_on_ctrl_c() -> None:
    """Make Ctrl-C stop the script. A fit returns the model it has when interrupted (what a
    notebook wants); here Ctrl-C raises ``SystemExit`` instead, which no fit catches, so a
    cut fit is never scored or written as a row that a resume would skip."""
    signal.signal(
        signal.SIGINT, lambda *_: sys.exit("interrupted: the rows written so far are kept")
    )


def check_settings(out: str | Path, settings: dict, fresh: bool = False) -> None:
    """Record ``settings`` in ``out/settings.json``; exit if the folder holds other values
    (``fresh``: the run replaces every row, so the old values are dropped)."""
    path = Path(out) / "settings.json"
    old = json.loads(path.read_text()) if path.exists() and not fresh else {}
    differ = {k: (old[k], v) for k, v in settings.items() if k in old and old[k] != v}
    if differ:
        said = ", ".join(f"{k} = {v!r} (the folder's rows: {o!r})" for k, (o, v) in differ.items())
        raise SystemExit(
            f"{out} holds rows made with other settings: {said}. Use another --out, or delete"
            " the folder's rows to remake them."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _private(path)
    tmp.write_text(json.dumps({**old, **settings}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    stop_on_ctrl_c()  # every resuming script comes here before its fits


def _private(path: Path) -> Path:
    """This process's temporary name for ``path``. Files are written whole there and renamed
    into place: scripts run side by side on one folder (splits in two processes), and none
    may read another's half-written file or write into its temporary."""
    return path.with_name(f".{path.name}.{os.getpid()}")


def write_csv(path: Path, rows: Iterable[dict], fields: Sequence[str]) -> None:
    """Write ``rows`` (missing fields empty) to ``path`` in one step."""
    tmp = _private(path)
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in fields} for r in rows)
    os.replace(tmp, path)
