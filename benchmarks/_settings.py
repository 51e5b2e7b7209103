"""Resuming guards shared by the benchmark scripts.

A script that resumes (skips the rows already in its output folder) identifies a row by a few
settings only (model, split, epochs, ...). The others go into ``settings.json`` in the folder,
and a later run with different values is refused rather than mixed into the same tables.
A fit cut by Ctrl-C must stop the script, not be written as a finished row.
"""

from __future__ import annotations

import json
import os
import signal
import sys
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
    # Written whole and renamed into place: scripts run side by side on one folder (splits
    # in two processes), and one must never read another's half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({**old, **settings}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    stop_on_ctrl_c()  # every resuming script comes here before its fits
