"""Photon-HDF5 (h5py): photon_data[N]/timestamps, detectors, nanotimes and their units."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import PhotonFileError
from perovdefect.photons.stream import PhotonStream, check_nonempty


def read_photon_hdf5(path: str | Path, timestamps_unit_s: float | None = None) -> PhotonStream:
    """Read the first photon_data group. Files that omit timestamps_specs/timestamps_unit need
    `timestamps_unit_s` from the user: no unit is ever guessed."""
    with _opened(Path(path), timestamps_unit_s) as (group, meta):
        return check_nonempty(_piece(group, 0, meta["n_records"], meta))


def iter_photon_hdf5(path: str | Path, chunk_records: int,
                     timestamps_unit_s: float | None = None) -> Iterator[PhotonStream]:
    """The first photon_data group as consecutive PhotonStreams of chunk_records photons (h5py
    reads only each slice)."""
    chunk_records = max(1, int(chunk_records))
    with _opened(Path(path), timestamps_unit_s) as (group, meta):
        for start in range(0, meta["n_records"], chunk_records):
            stop = min(meta["n_records"], start + chunk_records)
            piece = _piece(group, start, stop, meta)
            piece.header = dict(piece.header, first_record=start)
            yield piece


def _piece(g, start: int, stop: int, meta: dict[str, Any]) -> PhotonStream:
    ts = np.asarray(g["timestamps"][start:stop], dtype=np.int64)
    det = np.asarray(g["detectors"][start:stop], dtype=np.int8) if "detectors" in g else \
        np.zeros(ts.size, np.int8)
    nano = meta["nanotimes_unit_s"]
    nanot = np.asarray(g["nanotimes"][start:stop], dtype=np.int32) if nano else None
    return PhotonStream(
        channel=det, macrotime=ts, microtime=nanot, macrotime_resolution_s=meta["unit"],
        microtime_resolution_s=nano, mode="T3" if nano else "T2",
        record_type=meta["record_type"], n_records=int(ts.size), source=meta["source"],
        header={"group": meta["group"]})


@contextmanager
def _opened(path: Path, timestamps_unit_s: float | None):
    """(first photon_data group, metadata) of an open file; errors name the file."""
    import h5py
    if not path.is_file():
        raise PhotonFileError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise PhotonFileError(f"{path}: not an HDF5 file ({exc})") from exc
    with f:
        groups = sorted(k for k in f if k.startswith("photon_data"))
        if not groups:
            raise PhotonFileError(f"{path}: no photon_data group (not Photon-HDF5)")
        g = f[groups[0]]
        if "timestamps" not in g:
            raise PhotonFileError(f"{path}: {groups[0]}/timestamps missing")
        unit = None
        specs = g.get("timestamps_specs")
        if specs is not None and "timestamps_unit" in specs:
            unit = float(specs["timestamps_unit"][()])
        if unit is None:
            if timestamps_unit_s is None:
                raise PhotonFileError(f"{path}: no timestamps_specs/timestamps_unit in the file; "
                                      "give the unit explicitly (timestamps_unit_s / "
                                      "--timestamps-unit)")
            unit = float(timestamps_unit_s)
        nano_unit = None
        if "nanotimes" in g:
            ns = g.get("nanotimes_specs")
            if ns is not None and "tcspc_unit" in ns:
                nano_unit = float(ns["tcspc_unit"][()])
        version = f.attrs.get("format_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
        yield g, {"unit": unit, "nanotimes_unit_s": nano_unit, "group": groups[0],
                  "record_type": f"Photon-HDF5 {version}".strip(), "source": str(path),
                  "n_records": int(g["timestamps"].shape[0])}
