import subprocess
import sys


def test_io_and_imaging_do_not_import_torch():
    code = "import sys, astroenhance.io, astroenhance.imaging.wcs, astroenhance.imaging.normalize; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
