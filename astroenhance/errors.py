"""Exception types raised by astroenhance.  The CLI turns each into one line: `SettingsError` with exit status 2
(a usage error), every other one with exit status 1."""

from __future__ import annotations

import re


class AstroEnhanceError(Exception):
    """Base class for every error astroenhance raises on purpose."""


class SettingsError(AstroEnhanceError, ValueError):
    """A setting cannot be used (an option's value, an output folder inside the input tree): a usage error."""


class InputError(AstroEnhanceError):
    """An input file or array cannot be used (unreadable, corrupt, wrong shape, no data)."""


class NoImageError(InputError):
    """A FITS file holds no image at all, only tables (a catalogue, an association table): not a frame.  Named on
    the command line it is an error; found in a folder it is skipped with this reason."""

    def skip_reason(self, path) -> str:
        """Why a folder's run skips ``path``: this error's message without the file's name."""
        return f"not a frame: {str(self).removeprefix(f'{path}: ')}"


class EnhancedOutputError(NoImageError):
    """A FITS file that is itself an astroenhance output (display planes made 4x): not a frame to enhance again.
    Named on the command line it is an error; found in a folder it is skipped with this reason."""


class NoiseMapError(InputError):
    """A frame's rms or weight map (given by path, or a companion file beside it) cannot serve it: unreadable,
    another shape, no positive value, one map for a file of several chips."""


class DQFileError(InputError):
    """A frame's data-quality file (given by path, or WFPC2's ``_c1m``/``_c1f`` beside it) cannot serve it:
    unreadable, another number of chips or shape, not integer flags."""


class OutputError(AstroEnhanceError):
    """An output cannot be written (unwritable directory, full disk, would overwrite an input)."""


class WeightsError(AstroEnhanceError):
    """Weights are missing, do not match their recorded sha256, or do not fit the architecture."""


class DeviceError(AstroEnhanceError):
    """The requested device or precision is not available."""


class DiskFullError(OutputError):
    """The output file system is full: a batch stops here rather than fail every remaining file."""


def why_unreadable(exc: BaseException) -> str:
    """One short line for why a weights file could not be read (torch's refusal of an unsafe pickle is ten lines)."""
    import pickle

    if isinstance(exc, pickle.UnpicklingError):
        return "not tensors torch loads safely (weights only)"
    first = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


#: wcslib's line before its message: where in its C source the error was raised, which says nothing to a user
_WCSLIB_WHERE = re.compile(r"^ERROR \d+ in \w+\(\) at line \d+ of file .*:$")


def short_reason(exc: BaseException) -> str:
    """The first sentence of an exception's message (wcslib's line naming its C source left out; astropy's advice
    after the first sentence too), for one line that names a file and what is wrong with it."""
    text = [line for line in str(exc).strip().splitlines() if not _WCSLIB_WHERE.match(line.strip())]
    first = text[0].split(". ")[0].rstrip(".") if text else type(exc).__name__
    return first[:200]


#: a URL as a shell hands it to a path (``https://host/...``; ``pathlib`` makes ``//`` one ``/``)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


def no_such(path: object, what: str = "file") -> str:
    """``'<path>: no such <what>'`` and, where the path is a URL (https://, s3://...), that astroenhance reads local
    files and how to fetch one."""
    text = str(path)
    if _URL.match(text):
        scheme = text.split(":", 1)[0]
        return (f"{scheme}://{text.split(':/', 1)[1].lstrip('/')}: a URL; astroenhance reads local files: download it "
                "first (curl -O URL; astroquery.mast.Observations.download_products for the HST archive)")
    return f"{text}: no such {what}"
