"""Frame in, enhanced frame out.  One file per concept:

* `engine`     — `Enhancer`: networks loaded once; a frame streamed through tiles and column bands into a sink
* `finish`     — the noise gate, flux projection and gamut: the one copy `run`, `evaluate`, `compose` and
                 `mosaic` all use
* `output`     — output names and the row sinks (in memory; files written atomically)
* `provenance` — what every output records (dictionary, FITS cards, HISTORY)
* `device`     — the torch device and precision, batched inference
"""

from .engine import EnhancedArray, Enhancer, FrameResult, Networks, enhance
from .provenance import NOT_MEASUREMENT

__all__ = ["NOT_MEASUREMENT", "EnhancedArray", "Enhancer", "FrameResult", "Networks", "enhance"]
