"""Photon-HDF5 (h5py): photon_data[N]/timestamps, detectors, nanotimes and their units.

Before any photon is read the file is validated: photon_data/timestamps is a 1-D integer
dataset; detectors and nanotimes, where present, are 1-D integer datasets of the same length;
timestamps_unit (s) and tcspc_unit (s) are finite numbers > 0. A failure is a PhotonFileError
naming the file and the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import PerovDefectError, PhotonFileError
from perovdefect.photons.io.checks import (MAX_RESOLUTION_S, MIN_RESOLUTION_S, guard_errors,
                                           guard_iter_errors, positive_finite)
from perovdefect.photons.stream import PhotonStream, check_nonempty

MAX_DATASET_RATIO = 1000  # largest (declared bytes / file bytes) of a compressed dataset
# what h5py raises on a damaged file (bad addresses, heaps, B-trees, messages)
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
             OverflowError)


@guard_errors
def read_photon_hdf5(path: str | Path, timestamps_unit_s: float | None = None) -> PhotonStream:
    """Read the first photon_data group. Files that omit timestamps_specs/timestamps_unit need
    `timestamps_unit_s` (s, finite and > 0) from the user: no unit is ever guessed."""
    with _opened(Path(path), timestamps_unit_s) as (group, meta):
        stream = _piece(group, 0, meta["n_records"], meta)
        _check_sorted(stream.macrotime, meta, 0, None)
        return check_nonempty(stream)


@guard_iter_errors
def iter_photon_hdf5(path: str | Path, chunk_records: int,
                     timestamps_unit_s: float | None = None) -> Iterator[PhotonStream]:
    """The first photon_data group as consecutive PhotonStreams of chunk_records photons (h5py
    reads only each slice)."""
    chunk_records = max(1, int(chunk_records))
    with _opened(Path(path), timestamps_unit_s) as (group, meta):
        previous = None
        for start in range(0, meta["n_records"], chunk_records):
            stop = min(meta["n_records"], start + chunk_records)
            piece = _piece(group, start, stop, meta)
            _check_sorted(piece.macrotime, meta, start, previous)
            previous = int(piece.macrotime[-1]) if len(piece) else previous
            piece.header = dict(piece.header, first_record=start)
            yield piece


def _check_sorted(ts: np.ndarray, meta: dict[str, Any], start: int,
                  previous: int | None) -> None:
    """Photon-HDF5 timestamps must be non-decreasing (and >= 0): a garbled value would become
    a huge or negative arrival time. `previous`: the last timestamp of the piece before."""
    if ts.size == 0:
        return
    where = f"{meta['source']}: {meta['group']}/timestamps"
    if previous is not None and ts[0] < previous:
        raise PhotonFileError(f"{where} decreases at index {start} (not sorted: garbled)")
    down = np.flatnonzero(np.diff(ts) < 0)
    if down.size:
        raise PhotonFileError(f"{where} decreases at index {start + int(down[0]) + 1} "
                              "(not sorted: garbled)")
    if ts[0] < 0:
        raise PhotonFileError(f"{where} has negative values (uint64 beyond 2**63: garbled)")


def _in_range(values: np.ndarray, hi: int, meta: dict[str, Any], name: str,
              start: int) -> None:
    """0 <= values <= hi, else PhotonFileError naming the dataset and the first bad index."""
    bad = np.flatnonzero((values < 0) | (values > hi))
    if bad.size:
        i = int(bad[0])
        raise PhotonFileError(f"{meta['source']}: {meta['group']}/{name}[{start + i}] = "
                              f"{values[i]} is outside 0..{hi} (garbled)")


def _piece(g, start: int, stop: int, meta: dict[str, Any]) -> PhotonStream:
    ts = np.asarray(g["timestamps"][start:stop], dtype=np.int64)
    if "detectors" in g:
        raw_det = np.asarray(g["detectors"][start:stop])
        _in_range(raw_det, 127, meta, "detectors", start)
        det = raw_det.astype(np.int8)
    else:
        det = np.zeros(ts.size, np.int8)
    nano = meta["nanotimes_unit_s"]
    nanot = None
    if nano:
        raw_nano = np.asarray(g["nanotimes"][start:stop])
        _in_range(raw_nano, 2**31 - 1, meta, "nanotimes", start)
        nanot = raw_nano.astype(np.int32)
    return PhotonStream(
        channel=det, macrotime=ts, microtime=nanot, macrotime_resolution_s=meta["unit"],
        microtime_resolution_s=nano, mode="T3" if nano else "T2",
        record_type=meta["record_type"], n_records=int(ts.size), source=meta["source"],
        header={"group": meta["group"], "warnings": meta["warnings"]})


def _dataset(g, name: str, path: Path, group: str, length: int | None = None):
    """g[name] checked to be a 1-D integer dataset (of `length` elements if given)."""
    import h5py
    d = g.get(name)
    if not isinstance(d, h5py.Dataset):
        raise PhotonFileError(f"{path}: {group}/{name} is not a dataset")
    if d.ndim != 1 or d.dtype.kind not in "iu":
        raise PhotonFileError(f"{path}: {group}/{name} must be a 1-D integer array, found "
                              f"shape {d.shape} dtype {d.dtype}")
    if length is not None and d.shape[0] != length:
        raise PhotonFileError(f"{path}: {group}/{name} has {d.shape[0]} values but "
                              f"{group}/timestamps has {length}")
    # a garbled shape must not make us allocate (and fill) gigabytes: the data must be stored
    stored = int(d.id.get_storage_size())
    filtered = d.id.get_create_plist().get_nfilters() > 0
    file_bytes = path.stat().st_size
    if (not filtered and stored < d.nbytes) or d.nbytes > max(MAX_DATASET_RATIO * file_bytes,
                                                             1e8):
        raise PhotonFileError(f"{path}: {group}/{name} declares {d.shape[0]} values "
                              f"({d.nbytes} bytes) but the file stores {stored} bytes of it "
                              f"({file_bytes} bytes in all): truncated or garbled")
    return d


def _unit(specs, name: str, path: Path, where: str) -> float | None:
    """A scalar unit (s) from a *_specs group, finite and > 0; None when absent."""
    import h5py
    if not isinstance(specs, h5py.Group) or name not in specs:
        return None
    d = specs[name]
    if not isinstance(d, h5py.Dataset) or d.size != 1 or d.dtype.kind not in "iuf":
        raise PhotonFileError(f"{path}: {where}/{name} must be one number (s)")
    return positive_finite(d[()].item() if hasattr(d[()], "item") else d[()], path,
                           f"{where}/{name}", "s", MIN_RESOLUTION_S, MAX_RESOLUTION_S)


@contextmanager
def _opened(path: Path, timestamps_unit_s: float | None):
    """(first photon_data group, metadata) of an open, validated file; errors name the file."""
    import h5py
    if not path.is_file():
        raise PhotonFileError(f"{path}: no such file")
    if timestamps_unit_s is not None:
        timestamps_unit_s = positive_finite(timestamps_unit_s, path,
                                            "timestamps_unit_s (--timestamps-unit)", "s",
                                            MIN_RESOLUTION_S, MAX_RESOLUTION_S)
    try:
        f = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise PhotonFileError(f"{path}: not an HDF5 file ({exc})") from exc
    with f:
        try:
            yield _validated(f, path, timestamps_unit_s)
        except PerovDefectError:
            raise
        except H5_ERRORS as exc:  # damage h5py meets while reading (here or in the caller's
            # slices): bad addresses, heaps, link tables
            raise PhotonFileError(f"{path}: damaged HDF5 file ({type(exc).__name__}: "
                                  f"{exc})") from exc


def _validated(f, path: Path, timestamps_unit_s: float | None) -> tuple[Any, dict[str, Any]]:
    """(first photon_data group, metadata) of an open file, every dataset and unit checked."""
    import h5py
    groups = sorted(k for k in f if k.startswith("photon_data")
                    and isinstance(f[k], h5py.Group))
    if not groups:
        raise PhotonFileError(f"{path}: no photon_data group (not Photon-HDF5)")
    name = groups[0]
    g = f[name]
    if "timestamps" not in g:
        raise PhotonFileError(f"{path}: {name}/timestamps missing")
    n = int(_dataset(g, "timestamps", path, name).shape[0])
    if "detectors" in g:
        _dataset(g, "detectors", path, name, n)
    unit = _unit(g.get("timestamps_specs"), "timestamps_unit", path,
                 f"{name}/timestamps_specs")
    if unit is None:
        if timestamps_unit_s is None:
            raise PhotonFileError(f"{path}: no timestamps_specs/timestamps_unit in the file; "
                                  "give the unit explicitly (timestamps_unit_s / "
                                  "--timestamps-unit)")
        unit = timestamps_unit_s
    nano_unit = None
    warnings: list[str] = []
    if "nanotimes" in g:
        _dataset(g, "nanotimes", path, name, n)
        nano_unit = _unit(g.get("nanotimes_specs"), "tcspc_unit", path,
                          f"{name}/nanotimes_specs")
        if nano_unit is None:
            warnings.append(f"{path}: {name}/nanotimes without nanotimes_specs/tcspc_unit: "
                            "nanotimes ignored (read as T2)")
    version = f.attrs.get("format_version", b"")
    version = (version.decode(errors="replace") if isinstance(version, bytes)
               else str(version))
    return g, {"unit": unit, "nanotimes_unit_s": nano_unit, "group": name,
               "record_type": f"Photon-HDF5 {version}".strip(), "source": str(path),
               "n_records": n, "warnings": warnings}
