"""Readers: `read_photons(path)` picks the format from the file's magic bytes;
`iter_photons(path, chunk_records)` reads a file larger than memory piece by piece."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from perovdefect.errors import PhotonFileError
from perovdefect.photons.io.checks import guard_errors, guard_iter_errors
from perovdefect.photons.stream import PhotonStream

CHUNK_RECORDS = 20_000_000  # records decoded at a time when a file is read piece by piece


def _kind(path: Path) -> str:
    if not path.exists():
        raise PhotonFileError(f"{path}: no such file")
    if not path.is_file():
        raise PhotonFileError(f"{path}: not a regular file")
    try:
        with path.open("rb") as fh:
            magic = fh.read(16)
    except OSError as exc:
        raise PhotonFileError(f"{path}: cannot open ({exc.strerror or exc})") from exc
    if len(magic) < 8:
        raise PhotonFileError(f"{path}: file too short to be a TCSPC recording")
    if magic.startswith(b"PQTTTR"):
        return "ptu"
    if magic.startswith(b"\x89HDF"):
        return "hdf5"
    if magic.startswith(b"HydraHarp") or magic.startswith(b"PicoHarp"):
        return "legacy"
    raise PhotonFileError(f"{path}: unknown TCSPC file format (magic {magic[:8]!r}); expected "
                          "PTU (PQTTTR), HT2/HT3, PT2/PT3 or Photon-HDF5")


def _chunk(chunk_records: int, path: Path) -> int:
    """chunk_records validated: an integer >= 1 (records per piece)."""
    import numbers
    if isinstance(chunk_records, bool) or not isinstance(chunk_records, numbers.Integral) \
            or chunk_records < 1:
        raise PhotonFileError(f"{path}: chunk_records must be an integer >= 1, got "
                              f"{chunk_records!r}")
    return int(chunk_records)


@guard_iter_errors
def iter_photons(path: str | Path, chunk_records: int = CHUNK_RECORDS,
                 timestamps_unit_s: float | None = None,
                 allow_truncated: bool = False) -> Iterator[PhotonStream]:
    """Consecutive PhotonStreams of chunk_records records each, with absolute macrotimes (PTU
    and legacy files are memory-mapped, Photon-HDF5 is read slice by slice, so only one piece is
    in memory at a time). Every failure is a PhotonFileError naming the file."""
    path = Path(path)
    chunk_records = _chunk(chunk_records, path)
    kind = _kind(path)
    if kind == "ptu":
        from perovdefect.photons.io.ptu import iter_ptu
        yield from iter_ptu(path, chunk_records, allow_truncated)
    elif kind == "legacy":
        from perovdefect.photons.io.legacy import iter_legacy
        yield from iter_legacy(path, chunk_records, allow_truncated)
    else:
        from perovdefect.photons.io.photon_hdf5 import iter_photon_hdf5
        yield from iter_photon_hdf5(path, chunk_records, timestamps_unit_s)


@guard_errors
def info_by_pieces(path: str | Path, chunk_records: int = CHUNK_RECORDS,
                   timestamps_unit_s: float | None = None,
                   allow_truncated: bool = False) -> dict[str, Any]:
    """PhotonStream.info() of the whole file, summed piece by piece (bounded memory)."""
    total: dict[str, Any] | None = None
    per_channel: Counter = Counter()
    markers: Counter = Counter()
    for piece in iter_photons(path, chunk_records, timestamps_unit_s, allow_truncated):
        d = piece.info()
        per_channel.update(d["photons_per_channel"])
        markers.update(d["markers_per_channel"])
        if total is None:
            total = d
            total["warnings"] = list(piece.header.get("warnings", []))
            continue
        for key in ("number_records", "number_photons", "number_markers", "number_overflows",
                    "number_other_records"):
            total[key] += d[key]
        if d["last_photon_time_s"] is not None:
            total["last_photon_time_s"] = d["last_photon_time_s"]
    assert total is not None  # every reader yields at least one piece or raises
    if total["number_photons"] == 0:
        raise PhotonFileError(f"{path}: no photon records in the file")
    total["photons_per_channel"] = dict(sorted(per_channel.items()))
    total["markers_per_channel"] = dict(sorted(markers.items()))
    return total


@guard_errors
def read_photons(path: str | Path, timestamps_unit_s: float | None = None,
                 allow_truncated: bool = False) -> PhotonStream:
    """Read a PTU, HT3/HT2/PT3/PT2 or Photon-HDF5 file into a PhotonStream.

    timestamps_unit_s: only for Photon-HDF5 files that omit their unit. allow_truncated: decode
    the complete records of a file cut short (default: error). Every failure (missing, garbled,
    truncated file, bad unit) is a PhotonFileError naming the file."""
    path = Path(path)
    kind = _kind(path)
    if kind == "ptu":
        from perovdefect.photons.io.ptu import read_ptu
        return read_ptu(path, allow_truncated=allow_truncated)
    if kind == "hdf5":
        from perovdefect.photons.io.photon_hdf5 import read_photon_hdf5
        return read_photon_hdf5(path, timestamps_unit_s)
    from perovdefect.photons.io.legacy import read_legacy
    return read_legacy(path, allow_truncated)


__all__ = ["info_by_pieces", "iter_photons", "read_photons"]
