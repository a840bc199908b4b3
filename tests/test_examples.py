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
