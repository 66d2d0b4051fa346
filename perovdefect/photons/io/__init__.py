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


def with_rep_rate(stream: PhotonStream, rep_rate_hz: float | None) -> PhotonStream:
    """`stream` with the user's laser repetition rate (Hz) where its file states none; a rate
    that disagrees with the file's (by more than 0.1 %) is a PhotonFileError, never a silent
    override."""
    if rep_rate_hz is None or stream.mode != "T3":
        return stream
    from perovdefect.photons.io.checks import MAX_SYNC_RATE_HZ, positive_finite
    rate = positive_finite(rep_rate_hz, stream.source, "`rep_rate_hz`", "Hz",
                           1.0, MAX_SYNC_RATE_HZ)
    if stream.sync_rate_hz:
        if abs(rate / stream.sync_rate_hz - 1) > 1e-3:
            raise PhotonFileError(f"{stream.source}: `rep_rate_hz` ({rate / 1e6:g} MHz) "
                                  "disagrees with the file's sync rate "
                                  f"{stream.sync_rate_hz / 1e6:g} MHz; leave it out")
        return stream
    stream.sync_rate_hz = rate
    stream.header = dict(stream.header, sync_rate_source="given by the user")
    return stream


@guard_iter_errors
def iter_photons(path: str | Path, chunk_records: int = CHUNK_RECORDS,
                 timestamps_unit_s: float | None = None,
                 allow_truncated: bool = False,
                 rep_rate_hz: float | None = None) -> Iterator[PhotonStream]:
    """Consecutive PhotonStreams of chunk_records records each, with absolute macrotimes (PTU
    and legacy files are memory-mapped, Photon-HDF5 is read slice by slice, so only one piece is
    in memory at a time). rep_rate_hz: the laser repetition rate (Hz) of T3 files that state
    none. Every failure is a PhotonFileError naming the file."""
    path = Path(path)
    chunk_records = _chunk(chunk_records, path)
    kind = _kind(path)
    if kind == "ptu":
        from perovdefect.photons.io.ptu import iter_ptu
        pieces = iter_ptu(path, chunk_records, allow_truncated)
    elif kind == "legacy":
        from perovdefect.photons.io.legacy import iter_legacy
        pieces = iter_legacy(path, chunk_records, allow_truncated)
    else:
        from perovdefect.photons.io.photon_hdf5 import iter_photon_hdf5
        yield from iter_photon_hdf5(path, chunk_records, timestamps_unit_s, rep_rate_hz)
        return
    for piece in pieces:
        yield with_rep_rate(piece, rep_rate_hz)


@guard_errors
def info_by_pieces(path: str | Path, chunk_records: int = CHUNK_RECORDS,
                   timestamps_unit_s: float | None = None,
                   allow_truncated: bool = False,
                   rep_rate_hz: float | None = None) -> dict[str, Any]:
    """PhotonStream.info() of the whole file, summed piece by piece (bounded memory)."""
    total: dict[str, Any] | None = None
    per_channel: Counter = Counter()
    markers: Counter = Counter()
    for piece in iter_photons(path, chunk_records, timestamps_unit_s, allow_truncated,
                              rep_rate_hz):
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
                 allow_truncated: bool = False,
                 rep_rate_hz: float | None = None) -> PhotonStream:
    """Read a PTU, HT3/HT2/PT3/PT2 or Photon-HDF5 file into a PhotonStream.

    timestamps_unit_s: only for Photon-HDF5 files that omit their unit. allow_truncated: decode
    the complete records of a file cut short (default: error). rep_rate_hz: the laser
    repetition rate (Hz) of T3 files that state none (it must agree with one they state).
    Every failure (missing, garbled, truncated file, bad unit) is a PhotonFileError naming the
    file."""
    path = Path(path)
    kind = _kind(path)
    if kind == "ptu":
        from perovdefect.photons.io.ptu import read_ptu
        return with_rep_rate(read_ptu(path, allow_truncated=allow_truncated), rep_rate_hz)
    if kind == "hdf5":
        from perovdefect.photons.io.photon_hdf5 import read_photon_hdf5
        return read_photon_hdf5(path, timestamps_unit_s, rep_rate_hz)
    from perovdefect.photons.io.legacy import read_legacy
    return with_rep_rate(read_legacy(path, allow_truncated), rep_rate_hz)


__all__ = ["info_by_pieces", "iter_photons", "read_photons", "with_rep_rate"]
