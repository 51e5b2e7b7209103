"""The commands that README.md and docs/results.md give still run as written.

Every ``python benchmarks/<script>.py ...`` line is parsed by that script's own argument
parser (nothing is fitted), and every ablation config under ``benchmarks/ablations/``
expands and builds its data sets, priors and models. A renamed option, model name or
constructor argument then fails here instead of in a reader's terminal.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from pyro_gfa import ablation

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
DOCS = [ROOT / "README.md", ROOT / "docs" / "results.md"]
COMMAND = re.compile(r"python3? +(benchmarks/\w+\.py(?: [^`#\n]*)?)")
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")


def documented_commands() -> list[str]:
    found = set()
    for doc in DOCS:
        text = doc.read_text()
        pieces = FENCED.findall(text)  # code blocks: one command per line
        # inline code in the prose may wrap over lines: one command per span
        pieces += [" ".join(span.split()) for span in INLINE.findall(FENCED.sub("", text))]
        for match in (m for piece in pieces for m in COMMAND.finditer(piece)):
            line = match.group(1).strip()
            words = shlex.split(line)
            # usage lines ("[--seeds 0,1]", "--seed S") list options, they are not a run
            if not any(w.startswith("[") or w.isupper() and w.isalpha() for w in words):
                found.add(line)
    return sorted(found)


class Parsed(Exception):
    """Raised in place of running a script once its arguments have been parsed."""


@pytest.fixture
def parse_only(monkeypatch, tmp_path):
    """Make ``main`` stop with ``Parsed`` once its parser accepts the arguments; run in a
    temporary folder, so that nothing a script might write lands in ``results/``."""
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.chdir(tmp_path)


def load_script(path: Path, monkeypatch):
    name = f"documented_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import their neighbours
    spec.loader.exec_module(module)
    return module


def test_the_docs_give_commands_for_every_script():
    scripts = {shlex.split(c)[0] for c in documented_commands()}
    assert len(documented_commands()) > 50
    assert {f"benchmarks/{p.name}" for p in BENCHMARKS.glob("[a-z]*.py")} <= scripts


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_parses(command, monkeypatch, parse_only):
    script, *argv = shlex.split(command)
    module = load_script(ROOT / script, monkeypatch)
    with pytest.raises(Parsed):
        module.main(argv)


def test_a_misspelt_option_or_model_is_caught(monkeypatch, parse_only, capsys):
    module = load_script(BENCHMARKS / "zeisel_classification.py", monkeypatch)
    with pytest.raises(Parsed):
        module.main(["--models", "pca"])
    with pytest.raises(SystemExit):
        module.main(["--modles", "pca"])
    assert "unrecognized arguments: --modles" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.main(["--models", "no_such_model"])
    assert "invalid choice: 'no_such_model'" in capsys.readouterr().err


@pytest.mark.parametrize("config", sorted((BENCHMARKS / "ablations").glob("*.toml")), ids=str)
def test_shipped_ablation_config_builds_every_run(config):
    specs = ablation.expand(tomllib.loads(config.read_text()))
    assert specs
    models = ablation._model_classes()
    built = set()
    for spec in specs:
        what = (spec["label"], str(spec["data_params"]))
        if what in built:
            continue  # seeds of one setting build the same objects
        built.add(what)
        data = ablation.DATA[spec["data"]](**spec["data_params"], seed=spec["seed"])
        prior = ablation.PRIORS[spec["prior"]](**spec["prior_params"])
        models[spec["model"]](data, prior=prior, **spec["model_params"])


def test_readme_python_blocks_run(monkeypatch, tmp_path):
    """The README's Python blocks, in order in one namespace, as a reader pastes them
    (only the epochs cut from the paper's 625 to 2)."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 4
    code = "\n".join(blocks)
    assert code.count("epochs=625") >= 2
    monkeypatch.chdir(tmp_path)  # the walkthrough saves bars.zip
    namespace: dict = {}
    exec(compile(code.replace("epochs=625", "epochs=2"), "README.md", "exec"), namespace)
    plt.close("all")
    assert (tmp_path / "bars.zip").exists()
    assert namespace["same"].loadings().shape == namespace["model"].loadings().shape
