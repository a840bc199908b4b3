"""The Python API on an array + WCS, as in a notebook.  Run: python examples/notebook.py"""
from pathlib import Path

import numpy as np
from PIL import Image

from astroenhance import EnhanceConfig, Enhancer, read_frame

here = Path(__file__).parent
data, wcs, header = read_frame(here / "abell_2744_group_of_galaxies_f105w.fits.gz")
enhancer = Enhancer(EnhanceConfig(device="auto"))          # loads and checks the shipped weights once
result = enhancer.enhance_array(data, wcs)                 # no state is kept between calls

print("input", data.shape, "-> output", result.rgb.shape, "normalizer", result.normalizer)
blocks = result.luminance.reshape(data.shape[0], 4, data.shape[1], 4).mean(axis=(1, 3))
print("flux: max |4x4 block mean - normalized input| =", np.nanmax(np.abs(blocks - result.normalizer(data))))
print("sky of output pixel (0,0):", result.wcs.pixel_to_world(0, 0))
print("sky of input position (-0.375,-0.375):", wcs.pixel_to_world(-0.375, -0.375))
Image.fromarray((np.nan_to_num(result.rgb[::-1]) * 255 + 0.5).astype(np.uint8)).save(here / "notebook_output.png")
