"""Photon-HDF5 (h5py): photon_data[N]/timestamps, detectors, nanotimes and their units.

Before any photon is read the file is validated: photon_data/timestamps is a 1-D integer
dataset; detectors and nanotimes, where present, are 1-D integer datasets of the same length;
timestamps_unit (s) and tcspc_unit (s) are finite numbers > 0. A failure is a PhotonFileError
naming the file and the dataset.

T3 files (nanotimes with nanotimes_specs/tcspc_unit) need the laser repetition rate for decays
and the pulsed g2 (g2(0), M, BX/X). It is taken, in this order, from
1. setup/laser_repetition_rates (Hz; photon_data/measurement_specs/laser_repetition_rate in
   older files), as phconvert writes it from the PicoQuant header;
2. timestamps_specs/timestamps_unit, when it is the sync period: the TCSPC window
   (nanotimes_specs/tcspc_range, or tcspc_num_bins x tcspc_unit) fits in one timestamp tick;
3. nanotimes_specs/tcspc_range, taken as one laser period;
or given by the user (`rep_rate_hz`, --rep-rate-mhz), which must agree with a rate the file
states. Where it came from is `PhotonStream.header["sync_rate_source"]` (shown by `photons
info`); a T3 file whose rate cannot be known says so there and in its warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import PerovDefectError, PhotonFileError
from perovdefect.photons.io.checks import (MAX_ACQUISITION_S, MAX_RESOLUTION_S,
                                           MAX_SYNC_RATE_HZ, MIN_RESOLUTION_S, guard_errors,
                                           guard_iter_errors, integer, positive_finite)
from perovdefect.photons.stream import PhotonStream, check_nonempty

RATE_TOLERANCE = 1e-3  # relative difference of two stated repetition rates taken as equal
MAX_DATASET_RATIO = 1000  # largest (declared bytes / file bytes) of a compressed dataset
# what h5py raises on a damaged file (bad addresses, heaps, B-trees, messages)
H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError,
             OverflowError)


@guard_errors
def read_photon_hdf5(path: str | Path, timestamps_unit_s: float | None = None,
                     rep_rate_hz: float | None = None) -> PhotonStream:
    """Read the first photon_data group. Files that omit timestamps_specs/timestamps_unit need
    `timestamps_unit_s` (s, finite and > 0) from the user: no unit is ever guessed; T3 files
    that state no repetition rate take it from `rep_rate_hz` (Hz; module docstring)."""
    with _opened(Path(path), timestamps_unit_s, rep_rate_hz) as (group, meta):
        stream = _piece(group, 0, meta["n_records"], meta)
        _check_sorted(stream.macrotime, meta, 0, None)
        return check_nonempty(stream)


@guard_iter_errors
def iter_photon_hdf5(path: str | Path, chunk_records: int,
                     timestamps_unit_s: float | None = None,
                     rep_rate_hz: float | None = None) -> Iterator[PhotonStream]:
    """The first photon_data group as consecutive PhotonStreams of chunk_records photons (h5py
    reads only each slice)."""
    chunk_records = max(1, int(chunk_records))
    with _opened(Path(path), timestamps_unit_s, rep_rate_hz) as (group, meta):
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
        sync_rate_hz=meta["sync_rate_hz"], n_microtime_bins=meta["tcspc_num_bins"],
        acquisition_time_s=meta["acquisition_s"],
        record_type=meta["record_type"], n_records=int(ts.size), source=meta["source"],
        header={"group": meta["group"], "warnings": meta["warnings"],
                "sync_rate_source": meta["sync_rate_source"]})


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
def _opened(path: Path, timestamps_unit_s: float | None, rep_rate_hz: float | None = None):
    """(first photon_data group, metadata) of an open, validated file; errors name the file."""
    import h5py
    if not path.is_file():
        raise PhotonFileError(f"{path}: no such file")
    if timestamps_unit_s is not None:
        timestamps_unit_s = positive_finite(timestamps_unit_s, path,
                                            "`timestamps_unit_s`", "s",
                                            MIN_RESOLUTION_S, MAX_RESOLUTION_S)
    if rep_rate_hz is not None:
        rep_rate_hz = positive_finite(rep_rate_hz, path, "`rep_rate_hz`", "Hz",
                                      1.0 / MAX_RESOLUTION_S, MAX_SYNC_RATE_HZ)
    try:
        f = h5py.File(path, "r")
    except H5_ERRORS as exc:
        raise PhotonFileError(f"{path}: not an HDF5 file ({exc})") from exc
    with f:
        try:
            group, meta = _validated(f, path, timestamps_unit_s)
            meta.update(_repetition_rate(f, group, path, meta, rep_rate_hz))
            meta["acquisition_s"] = _acquisition(f, path)
            yield group, meta
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
                                  "give the unit explicitly with `timestamps_unit_s`")
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


def _scalar(group, name: str) -> Any:
    """The value of a scalar dataset group[name] (None when absent), numpy made plain."""
    import h5py
    if not isinstance(group, h5py.Group) or name not in group:
        return None
    d = group[name]
    if not isinstance(d, h5py.Dataset) or d.size != 1:
        return d  # the caller's check names the field
    v = d[()]
    v = v.reshape(-1)[0] if isinstance(v, np.ndarray) else v
    return v.item() if hasattr(v, "item") else v


def _stated_rates(f, group, path: Path) -> tuple[float | None, str]:
    """(rate in Hz, where) from setup/laser_repetition_rates or, in older layouts,
    photon_data/measurement_specs/laser_repetition_rate; (None, "") when neither is there."""
    import h5py
    name = group.name.strip("/")
    for where, holder, key in (("setup/laser_repetition_rates", f.get("setup"),
                                "laser_repetition_rates"),
                               (f"{name}/measurement_specs/laser_repetition_rate",
                                group.get("measurement_specs"), "laser_repetition_rate")):
        if not isinstance(holder, h5py.Group) or key not in holder:
            continue
        d = holder[key]
        if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "iuf" or not 1 <= d.size <= 64:
            raise PhotonFileError(f"{path}: {where} must hold 1 to 64 numbers (Hz)")
        rates = [positive_finite(float(x), path, where, "Hz", 1.0 / MAX_RESOLUTION_S,
                                 MAX_SYNC_RATE_HZ) for x in np.asarray(d[()]).reshape(-1)]
        if max(rates) > min(rates) * (1 + RATE_TOLERANCE):
            raise PhotonFileError(f"{path}: {where} lists different rates {rates} Hz: the "
                                  "sync period is ambiguous; give it with `rep_rate_hz`")
        return rates[0], where
    return None, ""


def _tcspc_window(specs, path: Path, where: str) -> tuple[int | None, float | None,
                                                        float | None]:
    """(tcspc_num_bins, tcspc_range in s, TCSPC window in s) of nanotimes_specs; the window is
    tcspc_range, else tcspc_num_bins x tcspc_unit, else None."""
    n_bins = _scalar(specs, "tcspc_num_bins")
    if n_bins is not None:
        n_bins = integer(n_bins, path, f"{where}/tcspc_num_bins", 1, 2**31)
    rng = _unit(specs, "tcspc_range", path, where)
    unit = _unit(specs, "tcspc_unit", path, where)
    window = rng if rng else (n_bins * unit if n_bins and unit else None)
    return n_bins, rng, window


def _repetition_rate(f, group, path: Path, meta: dict[str, Any],
                     user_hz: float | None) -> dict[str, Any]:
    """sync_rate_hz, its source (a sentence) and tcspc_num_bins (module docstring)."""
    where = f"{meta['group']}/nanotimes_specs"
    n_bins, rng, window = _tcspc_window(group.get("nanotimes_specs"), path, where)
    out: dict[str, Any] = {"tcspc_num_bins": n_bins, "sync_rate_hz": None,
                           "sync_rate_source": None}
    if not meta["nanotimes_unit_s"]:
        return out  # T2: no period needed
    stated, src = _stated_rates(f, group, path)
    unit = meta["unit"]
    if stated is None and window is not None and window <= unit * (1 + RATE_TOLERANCE):
        stated, src = 1.0 / unit, (f"timestamps_unit ({unit:g} s) taken as the sync period: "
                                   f"the TCSPC window ({window:g} s) fits in one tick")
    elif stated is None and rng is not None:
        stated, src = 1.0 / rng, f"{where}/tcspc_range ({rng:g} s) taken as one laser period"
    if user_hz is not None:
        if stated is not None and abs(user_hz / stated - 1) > RATE_TOLERANCE:
            raise PhotonFileError(f"{path}: `rep_rate_hz` ({user_hz / 1e6:g} MHz) disagrees "
                                  f"with {stated / 1e6:g} MHz from {src}; leave it out")
        if stated is None:
            stated, src = user_hz, "given by the user"
    if stated is None:
        msg = (f"{path}: laser repetition rate unknown (no setup/laser_repetition_rates, no "
               f"{where}/tcspc_range, and the timestamps unit {unit:g} s is not shown to be "
               "the sync period): decays and pulsed g2(0), M and BX/X need it; give it with "
               "`rep_rate_hz`")
        meta["warnings"].append(msg)
        out["sync_rate_source"] = "unknown: " + msg.split(": ", 1)[1]
        return out
    out["sync_rate_hz"], out["sync_rate_source"] = float(stated), src
    return out


def _acquisition(f, path: Path) -> float | None:
    """/acquisition_duration (s) when the file states it, else None."""
    v = _scalar(f, "acquisition_duration")
    if v is None:
        return None
    return positive_finite(v, path, "acquisition_duration", "s", 0.0, MAX_ACQUISITION_S)
