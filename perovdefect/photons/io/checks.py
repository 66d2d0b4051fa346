"""Header validation shared by the TCSPC readers: every number a header gives is checked before
it is trusted (a garbled or truncated file becomes a PhotonFileError naming the file and the
field, never a ZeroDivisionError, OverflowError or KeyError from deep inside a reader), and a
last-resort guard turns any other exception escaping a public reader into a PhotonFileError.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from perovdefect.errors import PerovDefectError, PhotonFileError

# Plausibility bounds for header values (a garbled header can hold any finite number; these
# keep values that no PicoQuant instrument can produce from reaching the analysis).
MIN_RESOLUTION_S = 1e-15   # finest time resolution accepted (s); instruments: >= 1 ps / 2^n
MAX_RESOLUTION_S = 1.0     # coarsest time resolution accepted (s)
MAX_SYNC_RATE_HZ = 1e10    # fastest sync (Hz); PicoQuant instruments sync below ~1.2 GHz
MAX_ACQUISITION_S = 1e7    # longest acquisition time accepted (s), about 116 days

F = TypeVar("F", bound=Callable[..., Any])


def positive_finite(value: Any, path: str | Path, field: str, unit: str,
                    lo: float = 0.0, hi: float = math.inf) -> float:
    """`value` as a float that is finite and lo < value <= hi (in `unit`), else a
    PhotonFileError naming the file and the field."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise PhotonFileError(f"{path}: header field {field} is {value!r} "
                              f"({type(value).__name__}), expected a number ({unit})")
    x = float(value)
    if not math.isfinite(x) or x <= 0:
        raise PhotonFileError(f"{path}: header field {field} = {x!r} {unit}: must be finite "
                              "and > 0")
    if not lo < x <= hi:
        raise PhotonFileError(f"{path}: header field {field} = {x!r} {unit} is outside the "
                              f"plausible range ({lo:g}, {hi:g}] {unit}")
    return x


def integer(value: Any, path: str | Path, field: str, lo: int | None = None,
            hi: int | None = None) -> int:
    """`value` as an int within [lo, hi], else a PhotonFileError naming the file and the field.
    Booleans and floats are refused (a tag of the wrong type means a garbled header)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise PhotonFileError(f"{path}: header field {field} is {value!r} "
                              f"({type(value).__name__}), expected an integer")
    n = int(value)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        lo_s = "-inf" if lo is None else str(lo)
        hi_s = "inf" if hi is None else str(hi)
        raise PhotonFileError(f"{path}: header field {field} = {n} is outside [{lo_s}, {hi_s}]")
    return n


def acquisition_time(value_ms: Any, path: str | Path, field: str) -> float | None:
    """Acquisition time from a header value in ms -> seconds; 0 (not recorded) -> None;
    negative, non-finite or absurd values -> PhotonFileError."""
    if value_ms is None:
        return None
    if isinstance(value_ms, bool) or not isinstance(value_ms, numbers.Real):
        raise PhotonFileError(f"{path}: header field {field} is {value_ms!r} "
                              f"({type(value_ms).__name__}), expected a number (ms)")
    x = float(value_ms)
    if not math.isfinite(x) or x < 0 or x / 1e3 > MAX_ACQUISITION_S:
        raise PhotonFileError(f"{path}: header field {field} = {x!r} ms: must be finite, >= 0 "
                              f"and at most {MAX_ACQUISITION_S:g} s")
    return x / 1e3 if x > 0 else None


def record_count(path: Path, offset: int, announced: int, allow_truncated: bool,
                 notes: list[str], field: str, record_bytes: int = 4) -> int:
    """Number of records to decode: the records start at byte `offset` and the header announces
    `announced` of `record_bytes` bytes each. The offset must lie within the file; a file holding
    fewer complete records than announced is an error unless allow_truncated, in which case the
    records present are decoded and a warning is appended to `notes`."""
    size = path.stat().st_size
    offset = integer(offset, path, "record offset (bytes)")
    if not 0 < offset <= size:
        raise PhotonFileError(f"{path}: header puts the records at byte {offset}, outside the "
                              f"file ({size} bytes): garbled header (field {field} / header "
                              "size)")
    announced = integer(announced, path, field)
    if announced < 0:
        raise PhotonFileError(f"{path}: header field {field} = {announced}: negative record "
                              "count")
    present = (size - offset) // record_bytes
    if announced == 0 or present == 0:
        raise PhotonFileError(f"{path}: header only, no TTTR records ({field} = {announced}, "
                              f"{size - offset} bytes after the header)")
    if present < announced:
        msg = (f"{path}: truncated: header field {field} announces {announced} records "
               f"({offset + announced * record_bytes} bytes) but the file has {size} bytes, "
               f"{present} complete records")
        if not allow_truncated:
            raise PhotonFileError(msg + " (`allow_truncated` decodes those)")
        notes.append(msg)
        return present
    return announced


class UnexpectedReadError(PhotonFileError):
    """A garbled file that reached a corner no explicit check covers (the original exception
    is the __cause__); the fuzz tests count these to find checks worth adding."""


def _wrap(exc: BaseException, path: Any) -> PhotonFileError:
    where = f"{path}: " if path is not None else ""
    return UnexpectedReadError(f"{where}cannot read the file ({type(exc).__name__}: {exc})")


def guard_errors(func: F) -> F:
    """Decorator for a public reader whose first argument is the file path: any exception other
    than a PerovDefectError (a garbled file reaching a numpy/h5py/ptufile corner) becomes a
    PhotonFileError naming the file. KeyboardInterrupt and SystemExit pass through."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PerovDefectError:
            raise
        except Exception as exc:
            raise _wrap(exc, args[0] if args else kwargs.get("path")) from exc
    return wrapper  # type: ignore[return-value]


def guard_iter_errors(func: F) -> F:
    """guard_errors for generator functions: also guards the iteration itself."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        path = args[0] if args else kwargs.get("path")
        try:
            yield from func(*args, **kwargs)
        except PerovDefectError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise _wrap(exc, path) from exc
    return wrapper  # type: ignore[return-value]
