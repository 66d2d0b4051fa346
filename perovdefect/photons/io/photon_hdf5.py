"""Photon-HDF5 (h5py): photon_data[N]/timestamps, detectors, nanotimes and their units."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perovdefect.errors import PhotonFileError
from perovdefect.photons.stream import PhotonStream, check_nonempty


def read_photon_hdf5(path: str | Path, timestamps_unit_s: float | None = None) -> PhotonStream:
    """Read the first photon_data group. Files that omit timestamps_specs/timestamps_unit need
    `timestamps_unit_s` from the user: no unit is ever guessed."""
    import h5py
    path = Path(path)
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
        ts = np.asarray(g["timestamps"][...], dtype=np.int64)
        det = np.asarray(g["detectors"][...], dtype=np.int8) if "detectors" in g else \
            np.zeros(ts.size, np.int8)
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
        nanot, nano_unit = None, None
        if "nanotimes" in g:
            nanot = np.asarray(g["nanotimes"][...], dtype=np.int32)
            ns = g.get("nanotimes_specs")
            if ns is not None and "tcspc_unit" in ns:
                nano_unit = float(ns["tcspc_unit"][()])
        version = f.attrs.get("format_version", b"")
        version = version.decode() if isinstance(version, bytes) else str(version)
    return check_nonempty(PhotonStream(
        channel=det, macrotime=ts, microtime=nanot if nano_unit else None,
        macrotime_resolution_s=unit, microtime_resolution_s=nano_unit,
        mode="T3" if nano_unit else "T2", record_type=f"Photon-HDF5 {version}".strip(),
        n_records=int(ts.size), source=str(path), header={"group": groups[0]}))
