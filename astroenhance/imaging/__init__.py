"""Pure numpy/astropy image operations: stretches, colour spaces, tiling, WCS scaling, metrics (no torch)."""
