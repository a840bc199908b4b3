"""What a picture says was observed (its AVM besides the sky): `io.observation.avm_observation`."""

import numpy as np
import pytest
from astropy.io import fits

from astroenhance.io.observation import avm_band, avm_observation
from astroenhance.io.writers import ImageWriter


def test_a_frames_header_gives_telescope_band_time_and_colour_assignment():
    image = fits.Header({"TELESCOP": "HST", "INSTRUME": "ACS", "FILTER1": "CLEAR1L", "FILTER2": "F814W",
                         "PHOTPLAM": 8045.5, "DATE-OBS": "2004-01-20", "TIME-OBS": "01:02:03", "EXPTIME": 1200.0})
    obs = avm_observation(fits.Header({"AE_COLOR": False}), image, grey=True)
    assert obs == {"Facility": ["HST"], "Instrument": ["ACS"], "Spectral.Bandpass": ["F814W"],
                   "Spectral.CentralWavelength": [804.55], "Spectral.Band": ["Optical"],
                   "Temporal.StartTime": ["2004-01-20T01:02:03"], "Temporal.IntegrationTime": [1200.0],
                   "Spectral.ColorAssignment": ["Grayscale"]}
    coloured = avm_observation(fits.Header({"AE_COLOR": True, "AE_COSTR": 0.1}), image, grey=True)
    assert coloured["Spectral.ColorAssignment"] == ["Pseudocolor"] and "0.1 of its strength" in coloured["Spectral.Notes"]
    # a colour picture's own colours kept: nothing said of them; nothing known of it: nothing at all
    assert avm_observation(fits.Header({"AE_COLOR": False}), fits.Header(), grey=False) == {}
    # a date with its time already, an exposure time that is not a number
    obs = avm_observation(fits.Header(), fits.Header({"DATE-OBS": "2019-03-01T10:00:00", "TIME-OBS": "11:00:00",
                                                      "EXPTIME": "n/a"}), grey=False)
    assert obs == {"Temporal.StartTime": ["2019-03-01T10:00:00"]}
    # an old header's date (dd/mm/yy) is not ISO 8601: left out; a time that is not one is not joined
    assert avm_observation(fits.Header(), fits.Header({"DATE-OBS": "20/01/94", "TIME-OBS": "01:02:03"}), False) == {}
    obs = avm_observation(fits.Header(), fits.Header({"DATE-OBS": "1994-01-20", "TIME-OBS": "noon"}), False)
    assert obs == {"Temporal.StartTime": ["1994-01-20"]}


def test_composites_name_each_channels_filter_and_mosaics_what_their_frames_agree_on():
    three = fits.Header({"AE_CMETH": "lupton", "AE_BFLT": "F435W", "AE_GFLT": "F606W", "AE_RFLT": "F814W"})
    assert avm_observation(three, fits.Header({"TELESCOP": "HST", "FILTER": "F606W"}), grey=False) == {
        "Spectral.Bandpass": ["F435W", "F606W", "F814W"], "Spectral.ColorAssignment": ["Blue", "Green", "Red"],
        "Spectral.Notes": "a composite of filters: the colours are the filters', not predicted"}
    two = fits.Header({"AE_CMETH": "asinh", "AE_BFLT": "F606W", "AE_GSRC": "mean of blue and red", "AE_GFLT": "mean",
                       "AE_RFLT": "F814W"})
    assert avm_observation(two, fits.Header(), grey=False)["Spectral.ColorAssignment"] == ["Blue", "Red"]
    many = fits.Header({"AE_CMETH": "lupton", "AE_NBAND": 5, "AE_BFLT": "F435W*0.50+F475W*0.50"})
    assert list(avm_observation(many, fits.Header(), grey=False)) == ["Spectral.Notes"]
    # (a mosaic's header keeps only what its frames agree on: `compose.drop_differing`)
    mosaic = avm_observation(fits.Header({"AE_NFRM": 2, "AE_COLOR": False}), fits.Header({"TELESCOP": "CFHT"}), True)
    assert mosaic == {"Facility": ["CFHT"], "Spectral.ColorAssignment": ["Grayscale"]}
    mixed = avm_observation(fits.Header({"AE_NFRM": 2, "AE_COLOR": "mixed", "AE_COSTR": "mixed"}), fits.Header(), True)
    assert mixed["Spectral.ColorAssignment"] == ["Pseudocolor"]
    assert "shown at strengths that differ between its frames" in mixed["Spectral.Notes"]


@pytest.mark.parametrize(("nm", "band"), [(0.001, "Gamma-ray"), (1.0, "X-ray"), (275.0, "Ultraviolet"),
                                          (399.9, "Ultraviolet"), (400.0, "Optical"), (850.0, "Optical"),
                                          (1050.0, "Infrared"), (24000.0, "Infrared"), (3e6, "Millimeter"),
                                          (2e8, "Radio")])
def test_avm_band_of_a_wavelength(nm, band):
    assert avm_band(nm) == band


def test_a_field_pyavm_refuses_is_left_out_with_a_note_and_the_picture_still_written(tmp_path):
    import pyavm

    w = ImageWriter(tmp_path / "x.png", (8, 8), "png", observation={"Facility": ["HST"],
                                                                    "Spectral.ColorAssignment": ["Mauve"]})
    w.write_rows(0, np.zeros((8, 8, 3)))
    w.commit()
    avm = pyavm.AVM.from_image(str(tmp_path / "x.png"))
    assert avm.Facility == ["HST"] and avm.Spectral.ColorAssignment is None
    assert any("Spectral.ColorAssignment ['Mauve'] left out" in n for n in w.notes)
