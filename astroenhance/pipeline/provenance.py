"""What every output records about how it was made: tool version, weights hashes, every parameter, the input's
checksum — as a dictionary (PNG/JPEG/TIFF text, the run report) and as FITS cards and HISTORY."""

from __future__ import annotations

import warnings

from astropy.io import fits

from .. import __version__
from ..config import EnhanceConfig, utc_now
from ..imaging.normalize import Normalizer
from ..imaging.wcs import scale_wcs, wcs_header
from ..io.readers import PIXEL_AREA, FrameSource, physical_cards, rescale_pixel_area
from ..io.writers import add_text, fits_text, set_card
from ..models.weights import WeightsInfo, sha256_file

NOT_MEASUREMENT = ("Generated detail is not measurement: colour and sub-pixel structure are predicted "
                   "by neural networks; use the input frame for photometry and astrometry.")
DISPLAY_BUNIT = ("display", "stretched display values in [0, 1], not flux")
COMPOSITE_CARDS = ("AE_CMETH", "AE_CREF", "AE_NBAND", *(f"AE_{c}{k}" for c in "BGR" for k in ("SRC", "FLT", "SHA", "CUT")))
#: a colour mosaic's own cards (`compose.colour_mosaic_header`), kept in its primary header
MOSAIC_CARDS = ("AE_COMB", "AE_GRID", "AE_BGMAT", "AE_NFRM")
#: what made a colour mosaic's pixels: these provenance entries are its frames' cards (the display step that writes the
#: mosaic changes none of its values), carried in its source's header (`compose.made_of`); weights as (id, sha256),
#: the sky's sigma over the frame as (least, most)
MADE_OF = {"sr_weights": ("AE_SRID", "AE_SRW"), "colorizer_weights": ("AE_COID", "AE_COW"),
           "settings_sha256": "AE_SETSH", "stretch": "AE_STRCH", "stretch_a": "AE_STRA", "interval": "AE_INTVL",
           "vmin": "AE_VMIN", "vmax": "AE_VMAX", "scale": "AE_SCALE", "flux_conserving": "AE_FLUX",
           "colorize": "AE_COLOR", "color_strength": "AE_COSTR", "flux_tolerance_sigma": "AE_FLUXT",
           "display_tolerance_sigma": "AE_DISPT", "sr_model": "AE_SRMOD", "sr_input_space": "AE_SRSPC",
           "noise_gate": "AE_GATE", "device": "AE_DEV", "precision": "AE_PREC", "sr_detail_fraction": "AE_SRDET",
           "fill_holes": "AE_FILLH", "cosmic_ray_pixels": "AE_NCR", "cosmic_ray_limit": "AE_CRLIM",
           "isolated_pixels": "AE_NHOT",
           "psf_fwhm": "AE_PSFFW", "psf_smoothing": "AE_PSFSM",
           # the frames' sky and noise, in their own units (the writing step's would be of display values)
           "sky": "AE_SKY", "sky_noise": "AE_SKYSG", "sky_noise_from": "AE_SIGSR", "sky_noise_file_sha256": "AE_SIGSH",
           "sky_noise_span": ("AE_SIGLO", "AE_SIGHI"), "dq_mask": "AE_DQMSK",
           "dq_file": "AE_DQFIL", "dq_file_sha256": "AE_DQSHA"}
#: the cards `MADE_OF` names, one list
MADE_OF_CARDS = tuple(key for card in MADE_OF.values() for key in (card if isinstance(card, tuple) else (card,)))
#: a card whose value differs between a colour mosaic's frames (each frame's in its HISTORY)
MIXED = "mixed"


PHOTOMETRY = ("BUNIT", "PHOTFLAM", "PHOTFNU", "PHOTZPT")


def _weights(info: WeightsInfo | None) -> str:
    return f"{info.id} {info.sha256}" if info else "none"


def made_of_frames(header: fits.Header | None) -> dict[str, object]:
    """The `MADE_OF` entries a source made of enhanced frames (a colour mosaic: its header holds ``AE_COMB``) carries
    in its header; nothing for any other source."""
    if header is None or "AE_COMB" not in header:
        return {}
    made: dict[str, object] = {}
    for key, card in MADE_OF.items():
        if key == "sky_noise_span":  # (least and most, each its card)
            if card[0] in header:
                made[key] = [header[c] for c in card]
        elif isinstance(card, tuple):  # weights: (id, sha256)
            if card[0] in header:
                made[key] = "none" if header[card[0]] == "none" else f"{header[card[0]]} {header[card[1]]}"
        elif card in header:
            made[key] = header[card]
    if "scale" in made:
        made["upscale"] = made["scale"] if made["scale"] == MIXED else int(made["scale"]) > 1
    return made


def provenance(src: FrameSource, cfg: EnhanceConfig, norm: Normalizer, *, scale: int, device: str, settings: str = "",
               sr_info: WeightsInfo | None, colorizer_info: WeightsInfo | None,
               sr_detail_fraction: float, sr_space: str = "display", color_strength: float = 0.0,
               flux_plane: tuple[bool, str] | None = None,
               psf: tuple[float, float, str] = (0.0, 0.0, "")) -> dict[str, object]:
    """Every fact and setting behind one output, in the order they are written (a colour mosaic's: what made its
    frames, `made_of_frames`, where the step that writes it would say nothing made them)."""
    prov = {
        "tool": f"astroenhance {__version__}",
        "input": src.path.name if src.path else src.name,
        "input_sha256": sha256_file(src.path) if src.path else str(src.header.get("AE_INSHA", "")
                                                                    if src.header is not None else ""),
        "chip": src.chip,
        "section": src.section,  # a cut-out's pixels of the frame (`io.cutout`); "": the whole frame
        "cutout": src.cutout,  # as asked (--cutout, --cutout-size: of several centres, this one)
        "sr_weights": _weights(sr_info),
        "colorizer_weights": _weights(colorizer_info),
        "settings_sha256": settings,  # `EnhanceConfig.digest`: what run --skip-existing compares
        "stretch": norm.stretch, "stretch_a": norm.a, "interval": norm.interval,
        "vmin": norm.vmin, "vmax": norm.vmax,
        "luminance": "BT.709 luma of display values",
        "tile": cfg.tile, "overlap": cfg.overlap, "scale": scale,
        # what actually ran: no flux projection and no gate without super-resolution
        "flux_conserving": bool(cfg.flux_conserving) and scale > 1, "colorize": cfg.colorize,
        "color_strength": round(float(color_strength), 4), "upscale": scale > 1,
        "flux_tolerance_sigma": float(cfg.flux_tolerance or 0.0) if cfg.flux_conserving and scale > 1 else 0.0,
        "display_tolerance_sigma": (float(cfg.display_tolerance or 0.0) if cfg.flux_conserving and scale > 1
                                    else 0.0),
        "flux_plane": "none" if flux_plane is None else ("sum" if flux_plane[0] else "mean"),
        "flux_plane_units": "" if flux_plane is None else flux_plane[1],
        "flux_err": flux_plane is not None and bool(cfg.flux_err),
        "sr_model": cfg.sr_model if cfg.upscale else "none",
        "sr_input_space": sr_space,
        # the input PSF's FWHM (input pixels; 0: not known), where it came from, and the Gaussian (output pixels) the
        # noise-space network's output was smoothed by for it (`Enhancer.psf_smoothing`)
        "psf_fwhm": round(float(psf[0]), 4), "psf_fwhm_from": psf[2], "psf_smoothing": round(float(psf[1]), 4),
        "sky": norm.sky, "sky_noise": norm.sky_noise, "sky_noise_from": src.noise_from or "estimated",
        # the map's file by its content too: the same name can hold another map
        "sky_noise_file_sha256": sha256_file(src.noise_file) if src.noise_file is not None else "",
        # the sky's sigma across the frame, least and most, where it varies (`io.noise.NoiseMap`); else the one sigma
        "sky_noise_span": list(src.noise_map.span) if src.noise_map is not None else [norm.sky_noise] * 2,
        "dq_mask": src.dq_mask,
        # a data-quality file of the frame's own (WFPC2's _c1m beside its _c0m; --dq), by name and content
        "dq_file": src.dq_file.name if src.dq_file is not None else "",
        "dq_file_sha256": sha256_file(src.dq_file) if src.dq_file is not None else "",
        "cosmic_ray_pixels": src.cosmic_rays, "cosmic_ray_limit": round(float(src.cosmic_ray_limit), 4),
        "isolated_pixels": src.hot_pixels,  # hot pixels, fill values no PSF makes (`io.noise.mask_isolated_pixels`)
        # no-data runs up to this long interpolated for the networks and display planes (grey frames; not FLUX)
        "fill_holes": src.fill_holes if src.fill_holes is not None else int(cfg.fill_holes) if src.channels == 1 else 0,
        "device": device, "precision": cfg.precision, "fits_encoding": cfg.fits_encoding,
        "noise_gate": bool(cfg.noise_gate) and scale > 1, "noise_sigma": norm.noise,
        "sr_detail_fraction": round(sr_detail_fraction, 4),
        "utc": utc_now(),
    }
    prov.update(made_of_frames(src.header))
    return prov


def _number(value: object) -> object:
    """A float card's value: a float, or `MIXED` where a colour mosaic's frames differ (`made_of_frames`)."""
    return value if value == MIXED else float(value)


def provenance_text(prov: dict[str, object]) -> str:
    """One line for an image's text chunk / TIFF description."""
    return "; ".join(f"{k}={v}" for k, v in prov.items()) + ". " + NOT_MEASUREMENT


def fits_headers(src: FrameSource, prov: dict[str, object],
                 scale: int) -> tuple[fits.Header, fits.Header, list[str], object]:
    """Primary header (provenance), image header (WCS + the input's kept keywords), notes, and the output WCS
    (None where the input has none; a picture's, from its AVM tags, is of its rows bottom-up) on the ``scale``
    times finer grid."""
    primary = fits.Header()
    sr_id, _, sr_sha = str(prov["sr_weights"]).partition(" ")
    co_id, _, co_sha = str(prov["colorizer_weights"]).partition(" ")
    cards = [("AE_VER", __version__, "astroenhance version"),
             ("AE_INPUT", fits_text(prov["input"])[-68:], "input file"),
             ("AE_INSHA", prov["input_sha256"], ""),
             ("AE_CHIP", fits_text(src.chip), "chip/extension of the input"),
             ("AE_CUT", prov["section"], "cut-out: input pixels [x0:x1,y0:y1]; '' all"),
             ("AE_SRW", sr_sha or "none", ""),
             ("AE_SRID", sr_id, "SR weights id"),
             ("AE_COW", co_sha or "none", ""),
             ("AE_COID", co_id, "colorizer weights id"),
             ("AE_SETSH", prov.get("settings_sha256", ""), ""),
             ("AE_STRCH", prov["stretch"], "stretch (astropy.visualization)"),
             ("AE_STRA", prov["stretch_a"], "stretch parameter a"),
             ("AE_INTVL", prov["interval"], "interval"),
             ("AE_VMIN", prov["vmin"], "input value mapped to 0"),
             ("AE_VMAX", prov["vmax"], "input value mapped to 1"),
             ("AE_LUMA", "BT709", "luminance = .2126R + .7152G + .0722B"),
             ("AE_TILE", prov["tile"], "tile size (input pixels)"),
             ("AE_OVLAP", prov["overlap"], "tile overlap (input pixels)"),
             ("AE_SCALE", prov["scale"], "output pixels per input pixel"),
             ("AE_FLUX", prov["flux_conserving"], "4x4 block means keep the input pixel"),
             ("AE_FLUXT", prov["flux_tolerance_sigma"], "FLUX: ... within this many input sigmas (0: exact)"),
             ("AE_DISPT", prov["display_tolerance_sigma"], "RGB blocks within N sigma, input units; 0 exact"),
             ("AE_FLXPL", prov["flux_plane"], "FLUX ext: 16 pixels sum/mean to input (none)"),
             ("AE_FLXER", prov["flux_err"], "FLUXERR ext: the input's sigma per block"),
             ("AE_COLOR", prov["colorize"], "colour predicted by the colorizer"),
             ("AE_COSTR", prov["color_strength"], "share of the predicted chroma shown"),
             ("AE_SRMOD", prov["sr_model"], "super-resolution model"),
             ("AE_SRSPC", prov["sr_input_space"], "SR input: display or noise-asinh values"),
             ("AE_PSFFW", _number(prov["psf_fwhm"]), "input PSF FWHM, input px (0: not known)"),
             ("AE_PSFSR", fits_text(prov["psf_fwhm_from"])[-68:], "AE_PSFFW from: given, header (HST), stars"),
             ("AE_PSFSM", _number(prov["psf_smoothing"]), "SR output smoothed: Gaussian sigma, output px"),
             ("AE_SKY", _number(prov["sky"]), "input sky (clipped median), input units"),
             ("AE_SKYSG", _number(prov["sky_noise"]), "input noise sigma, input units"),
             ("AE_SIGSR", fits_text(prov["sky_noise_from"])[-68:], "AE_SKYSG from: ERR, WHT, rms map, estimated"),
             ("AE_SIGSH", prov["sky_noise_file_sha256"], ""),
             ("AE_SIGLO", _number(prov["sky_noise_span"][0]), "least sky sigma over the frame (noise map)"),
             ("AE_SIGHI", _number(prov["sky_noise_span"][1]), "most sky sigma (= AE_SIGLO: one sigma)"),
             ("AE_DQMSK", prov["dq_mask"], "DQ flags read as no-data (-1 all; 0 none/no DQ)"),
             ("AE_DQFIL", fits_text(prov["dq_file"])[-68:], "DQ file (WFPC2 _c1m); '' the file's own"),
             ("AE_DQSHA", prov["dq_file_sha256"], ""),
             ("AE_NCR", prov["cosmic_ray_pixels"], "pixels read as no-data: cosmic rays (-1 no search)"),
             ("AE_CRLIM", prov["cosmic_ray_limit"], "sharpest star: peak / mean of 8 neighbours"),
             ("AE_NHOT", prov["isolated_pixels"], "hot pixels read as no-data (-1 no search)"),
             ("AE_FILLH", prov["fill_holes"], "no-data runs <= N px filled for display; FLUX NaN"),
             ("AE_DEV", prov["device"], "device"),
             ("AE_PREC", prov["precision"], "precision"),
             ("AE_GATE", prov["noise_gate"], "SR detail only above the input noise"),
             ("AE_NOISE", float(prov["noise_sigma"]), "noise sigma of display luminance"),
             ("AE_SRDET", prov["sr_detail_fraction"], "share of output pixels with SR network detail"),
             ("AE_DATE", prov["utc"], "UTC time of processing"),
             ("DATE", str(prov["utc"]).rstrip("Z"), "UTC date the file was written (FITS standard)"),
             ("BUNIT", *DISPLAY_BUNIT)]
    for key, value, comment in cards:
        set_card(primary, key, value, comment)
    # a composite's own provenance (compose.composite_source): method, reference grid, each channel's frame,
    # filter and sha256 — in the primary header too, where a reader looks first
    source = src.header if src.header is not None else fits.Header()
    for key in COMPOSITE_CARDS + MOSAIC_CARDS:
        if key in source:
            set_card(primary, key, source[key], source.comments[key])
    add_text(primary, "COMMENT", NOT_MEASUREMENT)
    for k, v in prov.items():
        add_text(primary, "HISTORY", f"astroenhance {k}: {v}")
    notes = list(src.notes)
    out_wcs = None
    image = fits.Header()
    if src.wcs is not None:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            out_wcs, wnotes = scale_wcs(src.wcs, scale) if scale != 1 else (src.wcs.deepcopy(), [])
        notes += wnotes
        for note in wnotes:
            add_text(primary, "HISTORY", note)
        # (a picture's WCS, from its AVM tags, is of its rows bottom-up as the FITS output writes them: `_avm_wcs`)
        image.extend(wcs_header(out_wcs), unique=True)
    kept = src.header.copy() if src.header is not None else fits.Header()
    for key in PHOTOMETRY + PIXEL_AREA:  # units of the input's values: they belong to FLUX, not to display planes
        kept.remove(key, ignore_missing=True, remove_all=True)
    for key in MADE_OF_CARDS:  # (a colour mosaic's frames' cards: recorded in the primary header, as its own)
        kept.remove(key, ignore_missing=True, remove_all=True)
    image.extend(kept, unique=True)
    for key, value, comment in physical_cards(src.physical, scale):  # (after the kept cards: these are the grid's)
        image[key] = (value, comment)
    image["BUNIT"] = DISPLAY_BUNIT
    add_text(image, "COMMENT", NOT_MEASUREMENT)
    return primary, image, notes, out_wcs


def flux_headers(image: fits.Header, src: FrameSource, per_pixel: bool, why: str,
                 scale: int = 4) -> tuple[fits.Header, fits.Header]:
    """The FLUX and FLUXERR extensions' headers: the colour planes' (WCS, kept keywords) with the input's units, and
    its pixel area (JWST's PIXAR_SR) on the ``scale``-times finer grid."""
    h = image.copy()
    unit = str(src.header.get("BUNIT", "")) if src.header is not None else ""
    h["BUNIT"] = (unit or "input units", "the input's units, on the 4x grid")
    for key in PHOTOMETRY[1:] + PIXEL_AREA:
        if src.header is not None and key in src.header:
            h[key] = (src.header[key], src.header.comments[key])
    rescale_pixel_area(h, 1 / scale**2, f"the {scale}x grid")
    h["AE_FLXMD"] = ("sum" if per_pixel else "mean", "output pixels sum (per-pixel units) or average")
    err = h.copy()
    add_text(h, "COMMENT", "FLUX: the enhanced luminance in the input's units. Every input pixel's flux is kept: "
             + why + ". The sub-pixel distribution is the network's, not a measurement. Its noise: FLUXERR.")
    # where each input pixel's sigma came from: the header card's short word, the comment's words
    estimated = src.noise_from in ("", "estimated")
    card, source = (("sky, estimated", "the sky's noise, estimated from the pixels") if estimated else
                    {"ERR": ("ERR", "the file's ERR extension"),
                     "WHT": ("1/sqrt(WHT)", "1/sqrt(WHT) of the file's WHT extension")}.get(
                        src.noise_from, (src.noise_from, f"the {'weight' if src.noise_from.startswith('WHT ') else 'rms'} "
                                                         f"map {src.noise_from.removeprefix('WHT ')}")))
    set_card(err, "AE_ERRSR", fits_text(card)[-68:], "FLUXERR: sigma of each input pixel from")
    share = "divided by 4" if per_pixel else "times 4"
    add_text(err, "COMMENT", f"FLUXERR: the noise sigma of each input pixel ({source}"
             + ("; photon noise of sources not included" if estimated else "")
             + f"), {share} on each of its 16 output pixels: summed in quadrature over a block they give the input "
             "pixel's sigma for the block's " + ("sum" if per_pixel else "mean") + ". The 16 pixels of a block share "
             "one measurement (fully correlated): quadrature sums are right over apertures of whole input pixels and "
             "close over apertures much larger than one; a single output pixel's error is not known.")
    return h, err
