"""The shipped examples run as the README says: the Python API walk-through keeps its promises on the example frame."""

import re
import runpy
import shutil
from pathlib import Path

from .conftest import EXAMPLE


def test_notebook_runs_and_its_flux_check_holds(tmp_path, capsys):
    """examples/notebook.py, from a copy beside a copy of the example frame (it writes its picture next to itself):
    the FLUX blocks keep the promise it prints, and the output WCS puts output pixel (0, 0) where the input's grid
    says."""
    script = Path(__file__).resolve().parents[1] / "examples" / "notebook.py"
    shutil.copy(script, tmp_path / "notebook.py")
    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    runpy.run_path(str(tmp_path / "notebook.py"), run_name="__main__")
    printed = capsys.readouterr().out
    ratio, promised = map(float, re.search(r"/ sigma = ([0-9.]+) \(promised <= ([0-9.]+)\)", printed).groups())
    assert 0 < ratio <= promised * (1 + 1e-3)
    skies = re.findall(r"\(ra, dec\) in deg\s+\(([-0-9., ]+)\)", printed)
    assert len(skies) == 2 and skies[0] == skies[1]
    assert (tmp_path / "notebook_output.png").stat().st_size > 0


def test_the_example_region_file_cuts_its_three_targets(tmp_path):
    """examples/targets.reg (as DS9 saves regions) on the example frame, as its own first lines say to run it: three
    cut-outs, each named by its region's label; galaxy A's circle of radius 1.2" is 40 of the frame's 0.06" pixels
    across."""
    from typer.testing import CliRunner

    from astroenhance.cli import app

    regions = EXAMPLE.parent / "targets.reg"
    assert f"--cutout-file examples/{regions.name}" in regions.read_text()
    r = CliRunner().invoke(app, ["run", str(EXAMPLE), "--cutout-file", str(regions), "-o", str(tmp_path), "--dry-run"],
                           terminal_width=400)
    assert r.exit_code == 0, r.output
    planned = sorted({Path(w.strip(",")).name for w in r.output.split() if w.endswith((".fits", ".fits,"))})
    assert [re.sub(r"\.x\d+-\d+y\d+-\d+\.", ".", n) for n in planned if "enhanced" in n] == [
        f"{EXAMPLE.name.removesuffix('.fits.gz')}.galaxy_{t}.enhanced.fits" for t in "ABC"]
    a = re.search(r"galaxy_A\.x(\d+)-(\d+)y(\d+)-(\d+)\.", " ".join(planned)).groups()
    x1, x2, y1, y2 = map(int, a)
    assert x2 - x1 + 1 == y2 - y1 + 1 == 40
