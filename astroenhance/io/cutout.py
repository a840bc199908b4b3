"""Cut-outs: enhance one part of a frame (a galaxy in a 4k ACS/WFC chip) instead of all of it.

A cut-out is a centre and a size.  The centre is a sky position (``"150.1191 2.2059"`` in degrees, or sexagesimal
``"10:00:28.6 +02:12:21"``; ICRS) or a pixel as DS9 shows it (``"512 300 pix"``: 1-based, x to the right, y up
from the bottom row — pictures too); the size is input pixels (``"256"``, ``"400x300"``) or an angle on the sky
(``"30arcsec"``, ``"1.5arcmin"``, ``"20x10arcsec"``).  The cut is whole input pixels: every pixel keeps its value, its
noise, its DQ flags and its sky position (`imaging.wcs.crop_wcs`), so the enhancement of a cut-out is that of a frame
which is those pixels; what the engine measures from the frame (sky, noise, display range) is measured on them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError, NoImageError, SettingsError
from ..imaging.wcs import crop_wcs
from .noise import sampled_median

#: the size of a cut-out given only its centre: 256 input pixels square (a 1024-pixel output)
DEFAULT_SIZE = "256"

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:[x×]\s*(\d+(?:\.\d*)?|\.\d+))?\s*"
                   r"(pix|px|pixels?|arcsec|arcmin|deg|\"|')?\s*")
_UNITS = {None: "pix", "pix": "pix", "px": "pix", "pixel": "pix", "pixels": "pix", "arcsec": "arcsec", '"': "arcsec",
          "arcmin": "arcmin", "'": "arcmin", "deg": "deg"}
_ARCSEC = {"arcsec": 1.0, "arcmin": 60.0, "deg": 3600.0}


class OutsideCutoutError(NoImageError):
    """A frame that does not hold the cut-out's centre.  Named on the command line it is an error; found in a
    folder (`run --cutout` over an archive: the frames that show a galaxy) it is skipped with this reason."""

    def skip_reason(self, path) -> str:
        return str(self).removeprefix(f"{path}: ")  # (a frame, not of this part of the sky)


@dataclass(frozen=True)
class Cutout:
    """A cut-out to take from every frame: ``centre`` (RA, Dec in degrees when ``sky``, else the 1-based pixel
    (x, y) as DS9 shows it; None: the frame's centre) and ``size`` (width, height) in ``unit`` (pix, arcsec);
    ``name``: the target's, where a catalogue or region file gave one (in the outputs' names: `file_name`)."""

    centre: tuple[float, float] | None
    sky: bool
    size: tuple[float, float]
    unit: str
    name: str = ""

    def describe(self) -> str:
        if self.centre is None:
            where = "the frame's centre"
        elif self.sky:
            where = f"RA {self.centre[0]:.6f} Dec {self.centre[1]:+.6f}"
        else:
            where = f"pixel ({self.centre[0]:g}, {self.centre[1]:g})"
        w, h = self.size
        return ((f"{self.name}: " if self.name else "")
                + f"{w:g}x{h:g} {'pixels' if self.unit == 'pix' else self.unit} about {where}")

    @property
    def file_name(self) -> str:
        """The target's name as part of a file name: letters, digits, '.', '+' and '-' kept, runs of anything else
        one '_' (``"NGC 4414"``: ``NGC_4414``), at most 40 characters; "" without a name."""
        return re.sub(r"[^A-Za-z0-9.+-]+", "_", self.name).strip("._")[:40].strip("._")


def parse_cutouts(centres: str | None, size: str | None) -> list[Cutout]:
    """The cut-outs ``--cutout`` gives: centres separated by ';' or new lines (`--cutout-file`), each with ``size``
    (`parse_cutout`) or a size of its own after '/' (``"150.1 2.2 / 20x10arcsec"``: a region's, `read_regions`),
    and a target's name before '=' (``"NGC 4414 = 186.6126 31.2233"``: a catalogue's); none when neither is
    given."""
    if centres is None:
        return [] if size is None else [parse_cutout(None, size)]
    parts = [c.strip() for c in re.split(r"[;\n]", centres) if c.strip()]
    if not parts:
        raise SettingsError("--cutout: no centre given")
    cuts = []
    for part in parts:
        name, _, rest = part.rpartition("=")
        centre, _, own = rest.partition("/")
        cuts.append(replace(parse_cutout(centre.strip(), own.strip() or size), name=" ".join(name.split())))
    return cuts


def named(name: str, centre: str) -> str:
    """``centre`` (a `parse_cutouts` part) with the target's ``name`` before it, where it has one; the characters
    that part the grammar (';', '=', '/', new lines) become spaces."""
    name = " ".join(re.sub(r"[;=/]", " ", name).split())
    return f"{name} = {centre}" if name else centre


def parse_cutout(centre: str | None, size: str | None) -> Cutout | None:
    """The `Cutout` that ``--cutout CENTRE`` and ``--cutout-size SIZE`` give (None when neither is given), or a
    `SettingsError` saying what each may be."""
    if centre is None and size is None:
        return None
    m = _SIZE.fullmatch(DEFAULT_SIZE if size is None else size)
    if not m:
        raise SettingsError(f"--cutout-size {size!r}: give input pixels (256, 400x300) or an angle (30arcsec, "
                            "1.5arcmin, 20x10arcsec)")
    w = float(m.group(1))
    h = float(m.group(2)) if m.group(2) else w
    unit = _UNITS[m.group(3)]
    if unit != "pix":
        w, h, unit = w * _ARCSEC[unit], h * _ARCSEC[unit], "arcsec"
    elif w != int(w) or h != int(h):
        raise SettingsError(f"--cutout-size {size!r}: a size in pixels is a whole number of input pixels")
    if not (w > 0 and h > 0 and math.isfinite(w * h)):
        raise SettingsError(f"--cutout-size {size!r}: the size must be more than 0")
    if centre is None:
        return Cutout(None, False, (w, h), unit)
    return Cutout(*_parse_centre(centre), (w, h), unit)


#: a catalogue's columns of right ascension and declination (lower case), as TOPCAT, VizieR and SExtractor name them
RA_COLUMNS = ("ra", "raj2000", "_raj2000", "ra_icrs", "ra_deg", "alpha_j2000", "alpha_sky", "x_world")
DEC_COLUMNS = ("dec", "dej2000", "_dej2000", "decj2000", "de_icrs", "dec_icrs", "dec_deg", "delta_j2000",
               "delta_sky", "y_world")
#: a catalogue's column of target names (lower case): the outputs of a target's cut-outs carry its name
NAME_COLUMNS = ("name", "id", "object", "objname", "obj_name", "main_id", "source", "target", "galaxy", "number")
#: catalogue files read as tables (`read_catalogue`), by their names; FITS files also by their first bytes
TABLE_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".vot", ".votable", ".xml", ".ecsv")


def is_table_file(path) -> bool:
    """Whether ``path`` is a catalogue to read as a table (`TABLE_SUFFIXES`, or a FITS file by its first bytes)."""
    if str(path).lower().endswith(TABLE_SUFFIXES):
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(9) == b"SIMPLE  ="
    except OSError:
        return False


def read_cutout_file(path) -> list[str]:
    """The centres a ``--cutout-file`` holds, as `parse_cutouts` takes them: a DS9 region file's (`read_regions`), a
    catalogue table's (`read_catalogue`: FITS, VOTable, ECSV, SExtractor's "# 1 NUMBER" columns), else a text
    file's — one centre a line ('#' comments) or a CSV catalogue (`_csv_centres`)."""
    from pathlib import Path

    path = Path(path)
    lines = []
    table = is_table_file(path)  # (a FITS file known by its first bytes: read once)
    if not table:
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()  # (a spreadsheet's CSV: a BOM first)
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"--cutout-file {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if path.suffix.lower() == ".reg" or any(line.lower().startswith("# region file format") for line in lines):
        return read_regions(path)  # (DS9's: each region its centre and its own size)
    if table or (lines and re.match(r"#\s+1\s+[A-Za-z]", lines[0])):  # (SExtractor's: "# 1 NUMBER")
        return read_catalogue(path, table)
    return _csv_centres(path, [c for c in (line.split("#", 1)[0].strip() for line in lines) if c])


def _column(names: list[str], wanted: tuple[str, ...]) -> int | None:
    """The index in ``names`` of the first of ``wanted`` (lower case) that it holds, in any case; None if none."""
    lower = [n.lower() for n in names]
    return next((lower.index(w) for w in wanted if w in lower), None)


def _csv_centres(path, rows: list[str]) -> list[str]:
    """The centres of a text cut-out file: one per line as given, or — its first line holding a comma (or a
    semicolon, as spreadsheets write CSV in some countries) — a CSV catalogue: RA and Dec from the columns its
    header names (`RA_COLUMNS`, `DEC_COLUMNS`), each with the target's name where a column is named for it
    (`NAME_COLUMNS`: `named`), else from the first two columns (degrees or sexagesimal, ICRS)."""
    import csv

    if not rows or not (delimiter := next((d for d in ",;" if d in rows[0]), None)):
        return rows
    cells = [[c.strip() for c in row] for row in csv.reader(rows, delimiter=delimiter)]
    ra, dec, name = (_column(cells[0], w) for w in (RA_COLUMNS, DEC_COLUMNS, NAME_COLUMNS))
    if (ra is None) != (dec is None):
        raise SettingsError(f"--cutout-file {path}: its header names a column of {'RA' if dec is None else 'Dec'} "
                            f"but none of {'Dec' if dec is None else 'RA'} (columns: {', '.join(cells[0])})")
    if ra is None:
        if any(c and c[0].isalpha() for c in cells[0]):
            raise SettingsError(f"--cutout-file {path}: no column of RA and Dec in its header (columns: "
                                f"{', '.join(cells[0])}; name them ra and dec)")
        ra, dec, name = 0, 1, None  # (no header: no column of names either)
    else:
        cells = cells[1:]
    for row in cells:
        if len(row) <= max(ra, dec) or not row[ra] or not row[dec]:
            raise SettingsError(f"--cutout-file {path}: a row without RA and Dec: {','.join(row)!r}")
    return [named(row[name] if name is not None and name < len(row) else "", f"{row[ra]} {row[dec]}") for row in cells]


def read_catalogue(path, table_file: bool | None = None) -> list[str]:
    """The centres of a catalogue read by astropy's tables — a FITS binary table (its first table with RA and Dec
    columns: SExtractor's FITS_LDAC too), a VOTable, an ECSV table, SExtractor's ASCII catalogue — as `parse_cutouts`
    takes them: RA and Dec from the columns `RA_COLUMNS` and `DEC_COLUMNS` name (any case; in their units where
    they have them, else degrees; sexagesimal text too), each named by a `NAME_COLUMNS` column where there is one.
    ``table_file``: `is_table_file`'s answer for ``path``, where the caller has it (else asked here)."""
    import warnings

    from astropy import units as u
    from astropy.io import fits
    from astropy.table import Table

    table_file = is_table_file(path) if table_file is None else table_file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (astropy's notes on units it does not know, on the table it chose)
            if table_file and not str(path).lower().endswith((".vot", ".votable", ".xml", ".ecsv")):
                with fits.open(path) as h:
                    tables = [Table.read(hdu) for hdu in h if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU))]
            else:
                tables = [Table.read(path, format=None if table_file else "ascii")]
    except Exception as exc:  # noqa: BLE001 - astropy raises many kinds for a file it cannot read
        raise SettingsError(f"--cutout-file {path}: not a catalogue that can be read ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''})") from None

    def column(table, names):
        index = _column(table.colnames, names)
        return None if index is None else table.colnames[index]

    found = next(((t, ra, dec) for t in tables
                  if (ra := column(t, RA_COLUMNS)) and (dec := column(t, DEC_COLUMNS))), None)
    if found is None:
        names = ", ".join(c for t in tables for c in t.colnames) or "none"
        raise SettingsError(f"--cutout-file {path}: no table with a column of RA and Dec (columns: {names}; name them "
                            "ra and dec)")
    table, ra, dec = found
    name = column(table, NAME_COLUMNS)

    def values(col) -> list[str]:
        if col.dtype.kind in "US":  # sexagesimal text (VizieR's "00 14 19.14")
            return [str(v) for v in col]
        if col.unit is not None and col.unit.is_equivalent(u.deg):
            col = col.quantity.to_value(u.deg)
        return [f"{float(v):.9f}" for v in col]

    masked = getattr(table[ra], "mask", None)
    if masked is not None and (np.any(masked) or np.any(getattr(table[dec], "mask", False))):
        raise SettingsError(f"--cutout-file {path}: a row without RA and Dec")
    names = [str(v) for v in table[name]] if name else [""] * len(table)
    return [named(n, f"{r} {d}") for n, r, d in zip(names, values(table[ra]), values(table[dec]))]


def read_regions(path) -> list[str]:
    """The cut-outs a DS9 region file marks (read by astropy's `regions`), as `parse_cutouts` takes them: each
    included circle, ellipse, box, polygon or annulus its centre and the box about it ('RA DEC / WxHarcsec' in ICRS,
    or 'X Y pix / WxH' in image pixels, rounded up to whole ones; `_extent` for a rotated one); a point its centre
    alone (``--cutout-size``'s size); a region's label (``text={NGC 4414}``) its target's name.  Excluded regions ('-circle') and annotations (text, lines, compasses...) mark
    none; regions in physical coordinates, which `regions` cannot read, are a `SettingsError` naming the file, as is
    a file with no region to cut."""
    import warnings

    from astropy import units as u
    from regions import Regions

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            found = Regions.read(str(path), format="ds9")
        except Exception as exc:  # noqa: BLE001 - its parser's errors name the line
            raise SettingsError(f"--cutout-file {path}: not a DS9 region file that can be read ({exc})") from None
    for w in map(str, (w.message for w in said)):  # (what `regions` skipped, it says)
        if "physical" in w or "frame was not found" in w:
            raise SettingsError(f"--cutout-file {path}: regions in physical coordinates (DS9's default where a file "
                                "names no system) cannot be placed on a frame here; save them in image or fk5/icrs "
                                "coordinates")
        shape = re.match(r'"([^"]+)" frame or shape', w)
        if "skipping" in w and not (shape and shape.group(1).lower() in _ANNOTATIONS):
            raise SettingsError(f"--cutout-file {path}: a region in it cannot be read ({w.removesuffix('.')}), so "
                                "nothing would be cut for it; mark it with a circle, ellipse, box or polygon")
    cuts = []
    for region in found:
        kind = type(region).__name__
        sky, shape = kind.endswith("SkyRegion"), kind.removesuffix("SkyRegion").removesuffix("PixelRegion")
        if not region.meta.get("include", True) or shape not in _REGION_SHAPES:
            continue  # (excluded, or an annotation: text, a line, a compass... no part of the frame)
        centre, w, h = getattr(region, "center", None), None, None
        if shape == "Polygon":
            centre, (w, h) = _polygon_box(region.vertices, sky)
        elif shape.startswith("Circle"):
            w = h = 2 * (region.radius if shape == "Circle" else region.outer_radius)
        elif shape != "Point":
            outer = "" if shape in ("Ellipse", "Rectangle") else "outer_"
            w, h = _extent(getattr(region, outer + "width"), getattr(region, outer + "height"),
                           region.angle.to_value(u.deg), shape.startswith("Ellipse"), sky)
        if sky:
            c = centre.icrs
            where = f"{c.ra.deg:.8f} {c.dec.deg:+.8f}"
            size = "" if w is None else f" / {w.to_value(u.arcsec):.4f}x{h.to_value(u.arcsec):.4f}arcsec"
        else:
            where = f"{centre.x + 1:.3f} {centre.y + 1:.3f} pix"  # (regions counts from 0, DS9 and we from 1)
            size = "" if w is None else f" / {math.ceil(w - 1e-9):d}x{math.ceil(h - 1e-9):d}"
        cuts.append(named(str(region.meta.get("text", "")), where + size))  # (its label: text={NGC 4414})
    if not cuts:
        raise SettingsError(f"--cutout-file {path}: no region to cut in it (circle, ellipse, box, polygon, annulus or "
                            "point, not excluded)")
    return cuts


#: DS9 shapes that annotate, marking no part of a frame: those `regions` reads are left out, those it skips unread
_ANNOTATIONS = ("text", "line", "segment", "vector", "ruler", "compass", "projection", "composite")
#: the region shapes that mark a part of the frame (`regions`' class names without Sky/PixelRegion)
_REGION_SHAPES = ("Circle", "CircleAnnulus", "Ellipse", "EllipseAnnulus", "Rectangle", "RectangleAnnulus", "Polygon",
                  "Point")


def _extent(w, h, angle: float, ellipse: bool, sky: bool):
    """(width, height) of the box about a box (or an ellipse) of sides (axes) ``w``, ``h`` turned by ``angle``
    degrees: exact in image pixels; on the sky, whose axes are not the frame's (an HST frame is seldom north-up),
    the square about it at any turn — its diagonal (an ellipse: its major axis)."""
    turn = angle % 180
    if min(turn, 180 - turn) < 1e-6:
        return w, h
    if abs(turn - 90) < 1e-6:
        return h, w
    if sky:
        side = max(w, h) if ellipse else (w ** 2 + h ** 2) ** 0.5
        return side, side
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    if ellipse:
        return math.hypot(w * c, h * s), math.hypot(w * s, h * c)
    return w * c + h * s, w * s + h * c


def _polygon_box(vertices, sky: bool):
    """The centre and (width, height) of the box about a polygon's ``vertices`` (a SkyCoord: in offsets on the sky
    from their mean direction, a Quantity each; else pixels)."""
    if not sky:
        x, y = np.asarray(vertices.x, float), np.asarray(vertices.y, float)
        from regions import PixCoord

        return PixCoord((x.min() + x.max()) / 2, (y.min() + y.max()) / 2), (x.max() - x.min(), y.max() - y.min())
    from astropy.coordinates import SkyCoord

    v = vertices.icrs
    mean = SkyCoord(v.cartesian.mean(), frame="icrs", representation_type="cartesian")
    mean = SkyCoord(mean.spherical.lon, mean.spherical.lat, frame="icrs")
    dlon, dlat = mean.spherical_offsets_to(v)
    mid = mean.spherical_offsets_by((dlon.min() + dlon.max()) / 2, (dlat.min() + dlat.max()) / 2)
    return mid, (dlon.max() - dlon.min(), dlat.max() - dlat.min())


def _parse_centre(text: str) -> tuple[tuple[float, float], bool]:
    words = text.replace(",", " ").split()
    if words and words[-1].lower() in ("pix", "px", "pixel", "pixels", "image"):
        try:
            x, y = (float(v) for v in words[:-1])
        except ValueError:
            raise SettingsError(f"--cutout {text!r}: a pixel centre is 'X Y pix' (1-based, as DS9 shows it)") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise SettingsError(f"--cutout {text!r}: the pixel centre must be finite numbers")
        return (x, y), False
    from astropy import units as u
    from astropy.coordinates import Angle

    if len(words) == 6:  # "10 00 28.6 +02 12 21"
        words = [":".join(words[:3]), ":".join(words[3:])]
    try:
        if len(words) != 2:
            raise ValueError
        try:  # decimal degrees (Angle does not read 1e-3)
            ra, dec = float(words[0]), float(words[1])
        except ValueError:
            sexagesimal = any(c in words[0].lower() for c in ":hms")
            ra = Angle(words[0], unit=u.hourangle if sexagesimal else u.deg).deg
            dec = Angle(words[1], unit=u.deg).deg
    except (ValueError, u.UnitsError):
        raise SettingsError(f"--cutout {text!r}: give a sky position 'RA DEC' (ICRS; degrees, or 10:00:28.6 "
                            "+02:12:21) or a pixel 'X Y pix'") from None
    if not (math.isfinite(ra) and -90 <= dec <= 90):
        raise SettingsError(f"--cutout {text!r}: Dec {dec:g} is not within -90 to 90 degrees")
    return (ra % 360.0, dec), True


def _box(name: str, shape: tuple[int, int], wcs, cut: Cutout) -> tuple[int, int, int, int, bool]:
    """``(x0, y0, width, height, trimmed)`` of ``cut`` in the pixels of frame ``name`` of ``shape`` and ``wcs``
    (0-based, rows counted bottom-up as the WCS counts them), trimmed at the frame's edges; an `InputError` where it
    cannot be placed."""
    h, w = shape
    if wcs is None and (cut.unit != "pix" or (cut.sky and cut.centre is not None)):
        raise InputError(f"{name}: has no sky coordinates (WCS), so a cut-out "
                         + ("about a sky position" if cut.sky else "of an angular size")
                         + " cannot be placed; give the centre as 'X Y pix' and the size in pixels")
    if cut.centre is None:
        x, y = (w - 1) / 2, (h - 1) / 2
    elif cut.sky:
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        try:
            x, y = (float(v) for v in wcs.world_to_pixel(SkyCoord(*cut.centre, unit=u.deg, frame="icrs")))
        except Exception as exc:  # noqa: BLE001 - a WCS that cannot place it (the far side of a projection)
            raise OutsideCutoutError(f"{name}: does not hold the cut-out's centre ({cut.describe()}: "
                                     f"{type(exc).__name__})") from None
    else:
        x, y = cut.centre[0] - 1, cut.centre[1] - 1
    if not (math.isfinite(x) and math.isfinite(y) and -0.5 <= x < w - 0.5 and -0.5 <= y < h - 0.5):
        where = f"at pixel ({x + 1:.1f}, {y + 1:.1f}), " if math.isfinite(x) and math.isfinite(y) else ""
        raise OutsideCutoutError(f"{name}: does not hold the cut-out's centre ({cut.describe()}: {where}outside "
                                 f"its {w}x{h} pixels)")
    nx, ny = cut.size
    if cut.unit != "pix":  # arcsec: in pixels at the WCS's scale along x and y
        from astropy.wcs.utils import proj_plane_pixel_scales

        scales = proj_plane_pixel_scales(wcs.celestial) * 3600.0
        nx, ny = nx / scales[0], ny / scales[1]
    nx, ny = max(1, round(nx)), max(1, round(ny))
    cx, cy = math.floor(x + 0.5), math.floor(y + 0.5)  # the pixel the centre falls in
    x0, y0 = cx - nx // 2, cy - ny // 2
    x1, y1 = min(w, x0 + nx), min(h, y0 + ny)
    x0, y0 = max(0, x0), max(0, y0)
    return x0, y0, x1 - x0, y1 - y0, (x1 - x0, y1 - y0) != (nx, ny)


def fits_section(x0: int, y0: int, width: int, height: int) -> str:
    """The FITS section ``[x1:x2,y1:y2]`` (1-based, inclusive, as IRAF and DS9 write it) of the ``width`` x
    ``height`` pixels from 0-based ``(x0, y0)``."""
    return f"[{x0 + 1}:{x0 + width},{y0 + 1}:{y0 + height}]"


def _rows(read, r0: int, x0: int, x1: int):
    """A row reader of the cut-out's rows and columns from the frame's reader ``read`` (None stays None)."""
    if read is None:
        return None
    return lambda a, b: read(a + r0, b + r0)[:, x0:x1]


def cut_frame(src, cut: Cutout):
    """``src`` (a `FrameSource`) cut to ``cut``: a `FrameSource` of those pixels only, its WCS, noise, DQ and
    ERR rows cut alike, labelled by the FITS section it is (``x401-656y257-512``: 1-based, inclusive), after its
    target's name where it has one (``NGC_4414.x401-656y257-512``)."""
    x0, y0, nx, ny, trimmed = _box(src.name, src.shape, src.wcs, cut)
    h = src.shape[0]
    r0 = y0 if src.origin == "lower" else h - (y0 + ny)  # a picture's rows are stored top-down
    section = fits_section(x0, y0, nx, ny)
    tag = f"x{x0 + 1}-{x0 + nx}y{y0 + 1}-{y0 + ny}"  # (the section in a file name, after the target's name)
    tag = f"{target}.{tag}" if (target := cut.file_name) else tag
    rows = {k: _rows(getattr(src, k), r0, x0, x0 + nx) for k in ("read_rows", "noise_rows", "pixel_noise_rows",
                                                                   "dq_rows")}  # (each reader cut alike)
    out = replace(src, name=f"{src.name}{section}", shape=(ny, nx), label=f"{src.label}.{tag}" if src.label else tag,
                  cut_tag=tag, **rows, section=section, cutout=cut.describe(), notes=list(src.notes),
                  physical=(*src.physical[:4], src.physical[4] - x0, src.physical[5] - y0),
                  wcs=None if src.wcs is None else crop_wcs(src.wcs, x0, y0, nx, ny))
    if out.noise_rows is not None:  # the cut-out's own noise (a drizzled mosaic is deeper in some parts)
        out.noise = sampled_median(out.noise_rows, ny, lambda v: np.isfinite(v) & (v > 0)) or src.noise
    out.notes.append(f"cut-out {section} of its {src.shape[1]}x{src.shape[0]} pixels (1-based, inclusive; "
                     f"{cut.describe()}" + ("; trimmed at the frame's edge" if trimmed else "") + "): AE_CUT")
    return out


def require_sky_centre(cut: Cutout) -> None:
    """A `SettingsError` for a pixel centre of a grid made from several frames (a mosaic's: its pixels are not
    theirs)."""
    if cut.centre is not None and not cut.sky:
        raise SettingsError("--cutout: a mosaic's grid is made from its frames, so its pixels are not theirs; give "
                            "the centre as a sky position 'RA DEC'")


def cut_grid(wcs, shape: tuple[int, int], cut: Cutout):
    """The part of a grid made from several frames (a mosaic's) about ``cut``'s sky position: its WCS, its shape and
    its section.  A pixel centre is a `SettingsError` (the grid's pixels are not the frames'), a centre off the grid
    an `OutsideCutoutError`."""
    require_sky_centre(cut)
    x0, y0, nx, ny, _ = _box("the mosaic", shape, wcs, cut)
    return crop_wcs(wcs, x0, y0, nx, ny), (ny, nx), fits_section(x0, y0, nx, ny)


def cut_frames(frames: list, cuts: Cutout | list[Cutout] | None) -> list:
    """Each of ``frames`` cut to each of ``cuts`` (all of them as they are when none): one frame per chip that holds
    a cut-out's centre, chips that do not left out (noted); a cut-out no chip holds is noted, or where that is true of
    every cut-out, an `OutsideCutoutError`.  Two cut-outs of the same pixels are one."""
    cuts = [cuts] if isinstance(cuts, Cutout) else list(cuts or [])
    if not cuts:
        return frames
    kept, missed = [], []
    for cut in cuts:
        found, outside = [], []
        for f in frames:
            try:
                found.append(cut_frame(f, cut))
            except OutsideCutoutError as exc:
                outside.append((f.label, str(exc)))
        if not found:
            missed.append((cut, outside[0][1] + (f"; nor does any other chip ({', '.join(o[0] for o in outside[1:])})"
                                                 if len(outside) > 1 else "")))
            continue
        if len(cuts) == 1:  # (of several cut-outs, each chip misses most of them: not worth a line each)
            found[0].notes += [f"chip {label} does not hold the cut-out's centre: not enhanced" for label, _ in outside]
        for g in found:
            if twin := next((k for k in kept if k.label == g.label), None):
                twin.notes.append(f"cut-out {cut.describe()}: the same pixels as another, made once ({g.section})")
            else:
                kept.append(g)
    if not kept:
        raise OutsideCutoutError(missed[0][1] + (f"; nor any of the other {len(missed) - 1} cut-outs"
                                                 if len(missed) > 1 else ""))
    kept[0].notes += [f"cut-out {cut.describe()} not enhanced: the frame does not hold its centre" for cut, _ in missed]
    return kept
