"""`astroenhance check`: whether an output is intact, and what it says made it.

An output records how it was made (`pipeline.provenance`): the tool, its input's sha256, the weights' ids and
sha256, every setting. `check_output` reads that back and verifies the file without decoding it whole:

- a FITS file's checksums (DATASUM and CHECKSUM of every HDU, FITS standard appendix J), read in blocks;
- a PNG's chunk CRCs and its compressed pixel stream (complete, of the size its header gives), read in chunks;
- a JPEG or TIFF decoded (neither format carries a checksum).

Given the frames it was made from (``inputs``: sha256 of each file), each input it records is looked up by
content; given the installed weights (``installed``: id -> sha256), each network it names is compared with them.
"""

from __future__ import annotations

import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from .io.compression import BLOCK, data_bytes, opened
from .io.writers import ones_complement_sum

#: how `fits_integrity`'s note on HDUs without checksums begins (`Checked.verified` is False for them)
NOT_SUMMED = "no checksum recorded for"
CHUNK = 16 << 20  # bytes read at a time
HEX = re.compile(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{16}\b")


@dataclass
class Checked:
    """What `check_output` found: ``problems`` (the file is damaged, or an input it records is not the one given),
    ``notes`` (worth knowing, not wrong), and the facts it records."""

    path: Path
    kind: str = ""  # "FITS", "PNG", ...
    integrity: str = ""  # how it was verified, when it was
    verified: bool = False  # its checksums (FITS) or CRCs (PNG) all there and right; False: decoded only, or damaged
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, str] = field(default_factory=dict)  # the recorded entries (`pipeline.provenance`)
    inputs: list[tuple[str, str]] = field(default_factory=list)  # (name, sha256 or its first 16 hex digits)
    found: dict[str, Path | None] = field(default_factory=dict)  # recorded sha256 -> the file given that has it
    weights: list[tuple[str, str, str]] = field(default_factory=list)  # (network, id, sha256)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self, installed: dict[str, str] | None = None) -> dict:
        """What was found, for a JSON report (`check --json`): ``installed`` (weights id -> sha256) says whether each
        network's weights are the installed ones (None: not installed here)."""
        return {"path": str(self.path), "kind": self.kind, "ok": self.ok, "verified": self.verified,
                "integrity": self.integrity, "problems": self.problems, "notes": self.notes,
                "inputs": [{"name": n, "sha256": h, "found": None if h not in self.found else
                            (str(self.found[h]) if self.found[h] else "")} for n, h in self.inputs],
                "weights": [{"network": net, "id": wid, "sha256": sha,
                             "installed": None if installed is None or wid not in installed else installed[wid] == sha}
                            for net, wid, sha in self.weights],
                "provenance": self.provenance}


# ---- integrity ----------------------------------------------------------------------------------------------

def fits_integrity(path: Path) -> tuple[int, list[str], list[str]]:
    """The HDUs of the FITS file at ``path``, problems (a checksum that does not verify, a file cut short) and notes
    (HDUs without checksums), read in order, in pieces: a 1 GB output is never in memory (a compressed one,
    ``.fits.gz``, is decompressed as it is read)."""
    return _fits_walk(path)[:3]


def _fits_walk(path: Path) -> tuple[int, list[str], list[str], list[fits.Header]]:
    """`fits_integrity`'s HDUs, problems and notes, and the headers it read (those astropy could parse, in order):
    what the output records is read from them, the file read once."""
    problems, notes, unsummed, hdus, extensions, headers = [], [], [], 0, None, []
    with opened(path) as fh:
        while True:
            header = b""
            while True:
                block = fh.read(BLOCK)
                if len(block) < BLOCK:
                    # (the start of another extension's first card, however little of it is left: a file cut short)
                    if header or hdus == 0 or (block and b"XTENSION".startswith(block[:8])):
                        problems.append(f"HDU {hdus}: cut short in its header")
                    elif block.strip(b"\0 "):
                        notes.append("bytes after the last HDU that are not an HDU")
                    break
                if not header and hdus and not block.startswith(b"XTENSION"):
                    if block.strip(b"\0 "):
                        notes.append("bytes after the last HDU that are not an HDU")
                    block = b""
                    break
                header += block
                if any(header[i:i + 8] == b"END     " for i in range(len(header) - BLOCK, len(header), 80)):
                    break
            if len(block) < BLOCK:
                break
            label = f"HDU {hdus}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # (a card astropy would fix: its value is still read)
                    cards = fits.Header.fromstring(header.decode("ascii", "replace"))
                name = cards.get("EXTNAME", "PRIMARY" if hdus == 0 else "")
                if hdus == 0 and isinstance(cards.get("NEXTEND"), int):
                    extensions = cards["NEXTEND"]  # (as astroenhance's outputs and HST's files say)
                label += f" ({name})" if name else ""
                nbytes = data_bytes(cards)
                headers.append(cards)
            except Exception:  # noqa: BLE001 - a header astropy cannot read, or without its sizes
                problems.append(f"{label}: a header whose data size cannot be read")
                break
            padded, datasum, done = -(-nbytes // BLOCK) * BLOCK, 0, 0
            while done < padded:
                piece = fh.read(min(CHUNK, padded - done))
                if not piece:
                    break
                done += len(piece)
                datasum = ones_complement_sum(piece + b"\0" * (-len(piece) % 4), datasum)
            hdus += 1
            if done < padded:
                problems.append(f"{label}: cut short ({done} of its {padded} bytes of data)")
                break
            if "DATASUM" not in cards:
                unsummed.append(label)
            elif str(cards["DATASUM"]) != str(datasum):
                problems.append(f"{label}: its data's checksum does not match (DATASUM {cards['DATASUM']}, computed "
                                f"{datasum}): changed or damaged since it was written")
            elif "CHECKSUM" in cards and ones_complement_sum(header, datasum) != 0xFFFFFFFF:
                problems.append(f"{label}: its header's checksum does not match (CHECKSUM): changed since it was "
                                "written")
    if not problems and extensions is not None and hdus and hdus - 1 < extensions:
        problems.append(f"cut short after HDU {hdus - 1}: the primary header says {extensions} extensions follow it "
                        f"(NEXTEND), the file holds {hdus - 1}")
    if unsummed:
        notes.append(f"{NOT_SUMMED} {', '.join(unsummed)}: not verified")
    return hdus, problems, notes, headers


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_integrity(path: Path) -> tuple[dict[str, str], list[str]]:
    """The text chunks of the PNG at ``path`` and its problems: a chunk whose CRC does not match, a file cut short,
    a compressed pixel stream that does not end or holds other than the rows its header gives (read in chunks, the
    pixels decompressed and dropped as they come)."""
    problems: list[str] = []
    texts: dict[str, str] = {}
    expected = None
    inflate, produced = zlib.decompressobj(), 0
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if fh.read(8) != PNG_SIGNATURE:
            return texts, ["not a PNG (its first bytes are not PNG's signature)"]
        while True:
            head = fh.read(8)
            if len(head) < 8:
                problems.append("cut short: no IEND chunk")
                break
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            if length > size - fh.tell():  # (a damaged length would have a whole GB read for one chunk)
                problems.append(f"cut short in its {kind.decode('latin-1')} chunk (it gives {length:,} bytes, "
                                f"{max(size - fh.tell(), 0):,} follow)")
                break
            crc = zlib.crc32(kind)
            if kind == b"IDAT":  # (in pieces: a large picture's chunks are its size)
                left = length
                while left:
                    piece = fh.read(min(CHUNK, left))
                    if not piece:
                        break
                    left -= len(piece)
                    crc = zlib.crc32(piece, crc)
                    try:
                        produced += len(inflate.decompress(piece, 0))
                    except zlib.error as exc:
                        problems.append(f"its compressed pixels are damaged ({exc})")
                        return texts, problems
                body = b"" if not left else None
            else:
                body = fh.read(length)
                crc = zlib.crc32(body, crc)
                body = body if len(body) == length else None
            stored = fh.read(4)
            if body is None or len(stored) < 4:
                problems.append(f"cut short in its {kind.decode('latin-1')} chunk")
                break
            if int.from_bytes(stored, "big") != crc:
                problems.append(f"its {kind.decode('latin-1')} chunk's CRC does not match: changed or damaged")
            if kind == b"IHDR" and len(body) == 13:
                width, height, depth, colour, interlace = (int.from_bytes(body[:4], "big"),
                                                           int.from_bytes(body[4:8], "big"), body[8], body[9], body[12])
                if not interlace and colour in PNG_CHANNELS:
                    expected = height * (1 + -(-width * PNG_CHANNELS[colour] * depth // 8))
            elif kind == b"tEXt" and b"\0" in body:
                key, _, value = body.partition(b"\0")
                texts[key.decode("latin-1")] = value.decode("latin-1")
            elif kind == b"iTXt" and b"\0" in body:
                key, _, rest = body.partition(b"\0")
                flag, rest = rest[:1], rest[2:]  # (compression flag and method)
                _, _, rest = rest.partition(b"\0")  # (language)
                _, _, value = rest.partition(b"\0")  # (translated keyword)
                value = zlib.decompress(value) if flag == b"\1" else value
                texts[key.decode("latin-1")] = value.decode("utf-8", "replace")
            elif kind == b"zTXt" and b"\0" in body:
                key, _, value = body.partition(b"\0")
                texts[key.decode("latin-1")] = zlib.decompress(value[1:]).decode("latin-1", "replace")
            elif kind == b"IEND":
                break
    if not problems:
        produced += len(inflate.flush())
        if not inflate.eof:
            problems.append("its compressed pixels end before their stream does: cut short or damaged")
        elif expected is not None and produced != expected:
            problems.append(f"its pixels are {produced} bytes where its header gives {expected}")
    return texts, problems


def decoded(path: Path) -> list[str]:
    """Problems decoding the JPEG or TIFF at ``path`` (they carry no checksum), in bounded memory: a TIFF strip by
    strip (every strip must be there, whole), a JPEG at 1/8 scale (libjpeg reads every coefficient of the stream and
    inverts each 8x8 block to one pixel: a 16384² picture in 12 MB, not 805)."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                for page in tif.pages:  # (tifffile's own `segments` and `imread` hold every strip at once)
                    for i, (offset, size) in enumerate(zip(page.dataoffsets, page.databytecounts)):
                        tif.filehandle.seek(offset)
                        data = tif.filehandle.read(size)
                        if len(data) < size:
                            return [f"cannot be decoded: cut short in strip {i + 1} of {len(page.dataoffsets)} "
                                    f"({len(data):,} of its {size:,} bytes there)"]
                        page.decode(data, i, jpegtables=page.jpegtables)
        else:
            from PIL import Image

            with Image.open(path) as im:
                im.draft("RGB", (-(-im.size[0] // 8), -(-im.size[1] // 8)))
                im.load()
    except Exception as exc:  # noqa: BLE001 - whatever the decoder says is the problem
        return [f"cannot be decoded: {exc}"]
    return []


# ---- what it records -----------------------------------------------------------------------------------------

def history_lines(cards: list[str]) -> list[str]:
    """HISTORY cards joined into the lines astroenhance wrote (`io.writers.add_text` wraps a line over cards at
    spaces: each of its lines starts with ``astroenhance``)."""
    lines: list[str] = []
    for text in cards:
        if text.startswith("astroenhance") or not lines:
            lines.append(text)
        else:
            lines[-1] += " " + text
    return lines


def provenance_entries(lines: list[str]) -> dict[str, str]:
    """``astroenhance KEY: VALUE`` lines (a FITS output's provenance) as a dictionary."""
    out = {}
    for line in lines:
        m = re.fullmatch(r"astroenhance (\w+): ?(.*)", line)
        if m:
            out.setdefault(m[1], m[2])
    return out


#: provenance entries that name an input file by its sha256: (name entry, sha256 entry)
INPUT_ENTRIES = (("input", "input_sha256"), ("noise map", "sky_noise_file_sha256"), ("dq_file", "dq_file_sha256"))


def recorded_inputs(entries: dict[str, str], lines: list[str], cards: dict[str, str]) -> list[tuple[str, str]]:
    """The inputs an output records, (name, sha256 or its first 16 hex digits): its provenance entries, a mosaic's
    and a composite's HISTORY lines, a composite's channel cards."""
    found: list[tuple[str, str]] = []
    for name_key, sha_key in INPUT_ENTRIES:
        shas = HEX.findall(entries.get(sha_key, ""))
        name = entries.get(name_key, name_key) if name_key != "noise map" else "noise map"
        # a composite's or a mosaic's ("compose: a b c"): each file's name, in the order of their sha256
        files = list(dict.fromkeys(re.sub(r"\[[^]]*\]$", "", n) for n in name.partition(": ")[2].split()))
        names = files if files and len(files) == len(shas) else [
            name if len(shas) == 1 else f"{name} ({k + 1} of {len(shas)})" for k in range(len(shas))]
        found += list(zip(names, shas))
    names = {}
    for line in lines:
        if m := re.fullmatch(r"astroenhance mosaic input (\d+): (.*)", line):
            names[m[1]] = m[2]
        elif m := re.fullmatch(r"astroenhance mosaic input (\d+) sha256: (.*)", line):
            found += [(names.get(m[1], f"input {m[1]}"), h) for h in HEX.findall(m[2])]
        elif m := re.fullmatch(r"astroenhance compose band (\d+) of \d+: (.*?), filter .*sha256 ([0-9a-f]{64}).*", line):
            found.append((m[2], m[3]))
    for colour in "BGR":
        if len(cards.get(f"AE_{colour}SHA", "")) == 64:
            found.append((cards.get(f"AE_{colour}SRC", colour), cards[f"AE_{colour}SHA"]))
    longest: dict[str, tuple[str, str]] = {}  # (a 16-digit prefix of a whole sha256 recorded too: one input)
    for name, sha in sorted(found, key=lambda f: -len(f[1])):
        if not any(h.startswith(sha) for h in longest):
            longest[sha] = (name, sha)
    return list(longest.values())


def recorded_weights(entries: dict[str, str]) -> list[tuple[str, str, str]]:
    """(network, id, sha256) of the weights an output records."""
    out = []
    for network, key in (("SR", "sr_weights"), ("colorizer", "colorizer_weights")):
        wid, _, sha = entries.get(key, "none").partition(" ")
        if wid not in ("none", "mixed", ""):
            out.append((network, wid, sha))
    return out


def _fits_records(headers: list[fits.Header]) -> tuple[dict[str, str], list[str], dict[str, str]]:
    """A FITS output's provenance entries, HISTORY lines (of every header) and primary cards, from its ``headers``
    (`_fits_walk`'s)."""
    lines: dict[str, None] = {}  # (each line once: the RED, GREEN and BLUE headers repeat theirs)
    cards = {k: str(v) for k, v in headers[0].items() if k not in ("HISTORY", "COMMENT", "")}
    for header in headers:
        if "HISTORY" in header:
            lines.update(dict.fromkeys(history_lines([str(c) for c in header["HISTORY"]])))
    return provenance_entries(list(lines)), list(lines), cards


def check_output(path: str | Path, inputs: InputFiles | None = None,
                 installed: dict[str, str] | None = None) -> Checked:
    """Verify the output at ``path`` and read what it records (`Checked`).  ``inputs``: the files it may have been
    made from (each input it records must be among them); ``installed``: weights id -> sha256."""
    from .io.readers import is_fits

    path = Path(path)
    out = Checked(path)
    try:
        if is_fits(path):
            out.kind = "FITS"
            hdus, out.problems, out.notes, headers = _fits_walk(path)
            entries, lines, cards = _fits_records(headers) if headers else ({}, [], {})
            if "AE_VER" not in cards:
                out.problems.append("not an astroenhance output (no AE_VER in its primary header)")
            if not out.problems:
                out.verified = not any(n.startswith(NOT_SUMMED) for n in out.notes)
                out.integrity = f"{hdus} HDUs, their checksums verify" if out.verified else f"{hdus} HDUs"
        else:
            suffix = path.suffix.lower()
            out.kind = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, "")
            if not out.kind:
                out.problems.append("not a FITS, PNG, JPEG or TIFF file")
                return out
            from .io.readers import picture_header, provenance_said

            if out.kind == "PNG":
                texts, out.problems = png_integrity(path)
                text = texts.get("Comment", "")
                out.integrity, out.verified = "its chunks' CRCs and compressed pixels verify", not out.problems
            else:
                out.problems = decoded(path)
                text = picture_header(path).text
                out.integrity = f"decodes ({out.kind} carries no checksum)"
                out.notes.append(f"{out.kind} carries no checksum: decoded, not verified")
            if not text.startswith("tool=astroenhance"):
                out.problems.append("not an astroenhance output (no astroenhance provenance text)")
            entries, lines, cards = provenance_said(text), [], {}
    except OSError as exc:
        out.problems.append(f"cannot be read ({exc.strerror or exc})")
        return out
    except Exception as exc:  # noqa: BLE001 - a damaged header: what astropy or the reader says
        out.problems.append(f"cannot be read: {exc}")
        return out
    out.provenance = {**entries, **{k: v for k, v in cards.items() if k.startswith("AE_")}}
    if not entries and "AE_COMB" in cards:  # a science mosaic: no provenance entries of its own
        out.provenance.setdefault("tool", f"astroenhance {cards.get('AE_VER', '')}")
        out.provenance.setdefault("utc", cards.get("AE_DATE", ""))
    out.inputs = recorded_inputs(entries, lines, cards)
    out.weights = recorded_weights(entries)
    if installed is not None:
        for network, wid, sha in out.weights:
            if wid not in installed:
                out.notes.append(f"its {network} weights {wid} are not installed here")
            elif installed[wid] != sha:
                out.notes.append(f"its {network} weights {wid} (sha256 {sha[:16]}...) are not the installed ones "
                                 f"({installed[wid][:16]}...): retrained or another version")
    if inputs is not None:
        for name, sha in out.inputs:
            out.found[sha] = inputs.find(name, sha)
            if out.found[sha] is None:
                out.problems.append(f"its input {name} (sha256 {sha[:16]}...) is none of the files given: changed "
                                    "since, or not given")
    return out


class InputFiles:
    """The files an output may have been made from (files, and every file under folders), each hashed (sha256) only
    when it is looked for, and once: first those named as the output records its input, then the others."""

    def __init__(self, paths: list[Path]):
        self.files = [f for p in paths for f in ([p] if p.is_file() else sorted(
            q for q in p.rglob("*") if q.is_file() and not any(part.startswith(".") for part in q.relative_to(p).parts)))]
        self.shas: dict[Path, str] = {}

    def find(self, name: str, sha: str) -> Path | None:
        """The file whose sha256 is or begins with ``sha`` (``name``: the input's name as recorded)."""
        from .models.weights import sha256_file

        named = re.sub(r"\[.*\]$", "", name.split(": ")[-1].split(" (")[0]).strip()  # (its chip, a count dropped)
        for f in sorted(self.files, key=lambda f: f.name != Path(named).name):
            if f not in self.shas:
                try:
                    self.shas[f] = sha256_file(f)
                except OSError:
                    self.shas[f] = ""
            if self.shas[f] and self.shas[f].startswith(sha):
                return f
        return None
