"""The Python API on an array + WCS, as in a notebook.  Run: python examples/notebook.py"""
from pathlib import Path

import numpy as np

from astroenhance import EnhanceConfig, Enhancer, read_frame

here = Path(__file__).parent
data, wcs, header = read_frame(here / "abell_2744_group_of_galaxies_f105w.fits.gz")
enhancer = Enhancer(EnhanceConfig(device="auto"))          # loads and checks the shipped weights once
result = enhancer.enhance_array(data, wcs, header=header)  # no state is kept between calls; header: BUNIT...
# (enhancer.enhance_frame(path) reads the file as `run` does, ERR/WHT and DQ included: the same result as `run`;
# enhancer.enhance_frame(hdul) an HDUList from fits.open, changed in memory, as the file it would write)

print("input", data.shape, "-> output", result.rgb.shape, "normalizer", result.normalizer)
# flux to measure is the FLUX plane's: each input pixel's 16 output pixels sum (per-pixel units such as electrons/s)
# or average (surface brightness) to it, within AE_FLUXT sigma of its noise (FLUXERR adds up to that sigma)
h, w = data.shape
reduce = np.sum if result.header["AE_FLXPL"] == "sum" else np.mean
blocks = reduce(result.flux.reshape(h, 4, w, 4), axis=(1, 3))
sigma = np.sqrt((result.flux_err.astype(np.float64) ** 2).reshape(h, 4, w, 4).sum(axis=(1, 3)))
if result.header["AE_FLXPL"] == "mean":
    sigma /= 16
print(f"FLUX ({result.header['AE_FLXPL']} of 16 pixels): max |block - input pixel| / sigma =",
      f"{np.nanmax(np.abs(blocks - data) / sigma):.3f} (promised <= {result.header['AE_FLUXT']})")
# an astropy CCDData (ccdproc's container) goes in as a file would (mask: no data, uncertainty: the noise, unit: BUNIT)
# and the FLUX plane comes back as one, FLUXERR as its uncertainty (a block's 16 share one measurement)
from astropy.nddata import CCDData  # noqa: E402

flux = enhancer.enhance_array(CCDData(data, unit=header["BUNIT"], wcs=wcs, meta=header)).to_ccddata()
print("FLUX as CCDData:", flux.shape, flux.unit, "uncertainty", type(flux.uncertainty).__name__)
print("sky of output pixel (0,0):", result.wcs.pixel_to_world(0, 0))
print("sky of input position (-0.375,-0.375):", wcs.pixel_to_world(-0.375, -0.375))
result.save(here / "notebook_output.png")  # as `run` writes it (.fits: every plane, the headers); Jupyter shows `result`
