"""The package's layers, checked on every import statement (lazy ones inside functions too):

    cli  ->  pipeline, runner, batch, compose, combining, training  ->  models, imaging, io  ->  config, errors, metrics

* `io/` and `imaging/` never import torch (reading and the WCS stay light, usable without it);
* `models/` holds networks only: never astropy, never `io/` or the layers above it;
* nothing below the CLI imports the CLI, rich or typer (the library never prints or exits);
* every package is listed in pyproject.toml (the weights package lives outside the source tree).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "astroenhance"


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names.add(stem)
            names |= {f"{stem}.{a.name}" for a in node.names}
    return names


def _layer(sub: str) -> dict[str, set[str]]:
    root = PACKAGE / sub if sub else PACKAGE
    files = root.rglob("*.py") if sub else [p for p in PACKAGE.rglob("*.py") if p.name not in ("cli.py", "__main__.py")]
    return {str(p.relative_to(PACKAGE)): _imports(p) for p in files}


def _offenders(files: dict[str, set[str]], *prefixes: str) -> list[str]:
    return sorted(f"{f}: {n}" for f, names in files.items() for n in names
                  if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("layer", ["io", "imaging"])
def test_io_and_imaging_never_import_torch(layer):
    assert _offenders(_layer(layer), "torch") == []


def test_models_hold_networks_only():
    assert _offenders(_layer("models"), "astropy", "astroenhance.io", "astroenhance.pipeline", "astroenhance.training",
                      "astroenhance.cli", "astroenhance.runner", "astroenhance.batch") == []


def test_nothing_below_the_cli_imports_it_or_prints_with_rich():
    assert _offenders(_layer(""), "astroenhance.cli", "rich", "typer") == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The checks above could not fail if `_imports` missed imports: it must see these."""
    src = PACKAGE / "pipeline" / "engine.py"
    names = _imports(src)
    assert "torch" in names and "astroenhance.pipeline.finish" in names and "astroenhance.models.weights" in names
    assert "astroenhance.io.readers" in _imports(PACKAGE / "compose.py")  # imported inside a function


def test_io_and_imaging_do_not_load_torch_at_run_time():
    code = "import sys, astroenhance.io, astroenhance.imaging.wcs, astroenhance.imaging.normalize; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_every_package_is_installed():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed and "astroenhance._weights" in listed


def test_help_and_usage_errors_answer_before_heavy_imports():
    """`--help`, `run --help` and a usage error load neither torch nor astropy's FITS code nor reproject: they
    answer fast (`benchmarks/bench_startup.py` times it)."""
    code = """
import sys
from typer.testing import CliRunner
from astroenhance.cli import app
r = CliRunner()
codes = [r.invoke(app, ["--help"]).exit_code, r.invoke(app, ["run", "--help"]).exit_code,
         r.invoke(app, ["run", "x.fits", "-o", "o", "--format", "gif"]).exit_code,
         r.invoke(app, ["run", "x.fits", "-o", "o", "--interval", "percentile:0"]).exit_code]
print(codes, sorted(m for m in ("torch", "astropy.io.fits", "reproject") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[0, 0, 2, 2] []"


@pytest.mark.parametrize("given", [{}, {"GOMP_SPINCOUNT": "100"}, {"OMP_WAIT_POLICY": "ACTIVE"}])
def test_importing_the_package_shortens_openmp_spinning_unless_told(given):
    """GNU OpenMP's long spin after each parallel region costs the finishing's small tensor operations on 2 cores
    (~1.25x on a whole frame): the package asks for a short spin before torch loads OpenMP, and leaves a user's
    own OMP_WAIT_POLICY or GOMP_SPINCOUNT alone."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")} | given
    code = ("import os, sys, astroenhance; "
            "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    expected = {"GOMP_SPINCOUNT": "3000"} if not given else given  # set before anything could load torch
    assert out.split() == [str(expected.get("GOMP_SPINCOUNT")), str(expected.get("OMP_WAIT_POLICY")), "False"]
