"""Readers: `read_photons(path)` picks the format from the file's magic bytes."""

from __future__ import annotations

from pathlib import Path

from perovdefect.errors import PhotonFileError
from perovdefect.photons.stream import PhotonStream


def read_photons(path: str | Path, timestamps_unit_s: float | None = None,
                 allow_truncated: bool = False) -> PhotonStream:
    """Read a PTU, HT3/HT2/PT3/PT2 or Photon-HDF5 file into a PhotonStream.

    timestamps_unit_s: only for Photon-HDF5 files that omit their unit. allow_truncated: decode
    the complete records of a legacy file cut short (default: error)."""
    path = Path(path)
    if not path.is_file():
        raise PhotonFileError(f"{path}: no such file")
    magic = path.open("rb").read(16)
    if len(magic) < 8:
        raise PhotonFileError(f"{path}: file too short to be a TCSPC recording")
    if magic.startswith(b"PQTTTR"):
        from perovdefect.photons.io.ptu import read_ptu
        return read_ptu(path)
    if magic.startswith(b"\x89HDF"):
        from perovdefect.photons.io.photon_hdf5 import read_photon_hdf5
        return read_photon_hdf5(path, timestamps_unit_s)
    if magic.startswith(b"HydraHarp") or magic.startswith(b"PicoHarp"):
        from perovdefect.photons.io.legacy import read_legacy
        return read_legacy(path, allow_truncated)
    raise PhotonFileError(f"{path}: unknown TCSPC file format (magic {magic[:8]!r}); expected "
                          "PTU (PQTTTR), HT2/HT3, PT2/PT3 or Photon-HDF5")


__all__ = ["read_photons"]
