"""PicoQuant PTU (all T2/T3 record types) into a PhotonStream.

ptufile parses the header (tags, record type, resolutions, sync rate) and checks the file. The
records of every layout listed in `records.PTU_RECORD_LAYOUT` (PicoHarp, HydraHarp v1/v2,
TimeHarp 260, MultiHarp/PicoHarp 330) are decoded by `records.decode_records` in one parallel
pass; any other record type, or decoder="ptufile", goes through ptufile's own decode_records and
a split of its output (the reference the tests compare with).

Large files: above MEMMAP_ABOVE_RECORDS the raw records are memory-mapped (4 bytes each, never
all in memory), so only the photon arrays (13 bytes per photon) need to fit in memory; files
whose photons do not fit are read piece by piece with `iter_ptu`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perovdefect.errors import PhotonFileError
from perovdefect.photons.io import CHUNK_RECORDS
from perovdefect.photons.io.records import (PTU_RECORD_LAYOUT, iter_streams_from_records,
                                            stream_from_records)
from perovdefect.photons.stream import PhotonStream, check_nonempty

MEMMAP_ABOVE_RECORDS = 50_000_000


def _open(path: Path):
    import ptufile
    try:
        return ptufile.PtuFile(path)
    except FileNotFoundError:
        raise PhotonFileError(f"{path}: no such file") from None
    except Exception as exc:  # ptufile's own errors are clear but come as a traceback: re-raise
        raise PhotonFileError(f"{path}: not a readable PTU file ({exc})") from exc


def _checked_metadata(ptu, path: Path) -> dict[str, Any]:
    """Validate record count against the file size; PhotonStream fields from the header."""
    n_records = int(ptu.number_records)
    expected = ptu.record_offset + n_records * 4
    size = path.stat().st_size
    if n_records == 0:
        raise PhotonFileError(f"{path}: header only, no TTTR records")
    if size < expected:
        raise PhotonFileError(f"{path}: truncated: header announces {n_records} records "
                              f"({expected} bytes) but the file has {size} bytes")
    t3 = bool(ptu.is_t3)
    ms = ptu.tags.get("MeasDesc_AcquisitionTime")
    return dict(
        macrotime_resolution_s=float(ptu.global_resolution),
        microtime_resolution_s=float(ptu.tcspc_resolution) if t3 else None,
        mode="T3" if t3 else "T2", sync_rate_hz=float(ptu.syncrate) or None,
        record_type=str(ptu.record_type.name if hasattr(ptu.record_type, "name")
                        else ptu.record_type),
        n_records=n_records, acquisition_time_s=float(ms) / 1e3 if ms else None,
        source=str(path), n_microtime_bins=int(ptu.number_bins_in_period) if t3 else None,
        header={"creator": str(ptu.tags.get("CreatorSW_Name", "")),
                "hardware": str(ptu.tags.get("HW_Type", ""))})


def _layout(ptu) -> int | None:
    return PTU_RECORD_LAYOUT.get(int(ptu.tags.get("TTResultFormat_TTTRRecType", -1)))


def read_ptu(path: str | Path, decoder: Literal["auto", "ptufile"] = "auto",
             chunk_records: int = CHUNK_RECORDS) -> PhotonStream:
    """Read a .ptu file. Errors (wrong magic, truncated, header only) name the file.

    decoder: "auto" (perovdefect's decoder where the record type is known, else ptufile) or
    "ptufile" (always ptufile's decode_records; chunk_records bounds its split pass)."""
    path = Path(path)
    if decoder not in ("auto", "ptufile"):
        raise ValueError(f"unknown decoder {decoder!r} (auto, ptufile)")
    with _open(path) as ptu:
        meta = _checked_metadata(ptu, path)
        layout = _layout(ptu)
        n_records = meta["n_records"]
        ours = decoder == "auto" and layout is not None
        try:  # errors inside ptufile (bad record size, decoder): name the file
            if ours:
                raw = ptu.read_records(memmap=n_records > MEMMAP_ABOVE_RECORDS)
            else:
                fields = _decode_with_ptufile(ptu, meta["mode"] == "T3", n_records,
                                              chunk_records)
        except Exception as exc:
            raise PhotonFileError(f"{path}: cannot decode records ({exc})") from exc
        if ours:
            return stream_from_records(raw, layout, meta)
    return check_nonempty(PhotonStream(**fields, **meta))


def iter_ptu(path: str | Path, chunk_records: int = CHUNK_RECORDS) -> Iterator[PhotonStream]:
    """The file as consecutive PhotonStreams of chunk_records records each (memory-mapped, so a
    file larger than memory is fine). Macrotimes are absolute (overflows carried over from piece
    to piece); n_records is the piece's. Record types without a perovdefect layout are decoded
    whole by ptufile (one piece)."""
    path = Path(path)
    with _open(path) as ptu:
        meta = _checked_metadata(ptu, path)
        layout = _layout(ptu)
        if layout is None:
            yield read_ptu(path)
            return
        yield from iter_streams_from_records(ptu.read_records(memmap=True), layout, meta,
                                             chunk_records)


def _decode_with_ptufile(ptu, t3: bool, n_records: int, chunk_records: int) -> dict:
    """ptufile's decode_records (memory-mapped above MEMMAP_ABOVE_RECORDS), then photons and
    markers split apart chunk by chunk. Overflow and any other non-photon, non-marker records are
    counted together as overflows here (ptufile does not tell them apart)."""
    from perovdefect.photons.analysis.kernels import split_records
    rec = ptu.decode_records(out="memmap" if n_records > MEMMAP_ABOVE_RECORDS else None)
    parts = []
    for start in range(0, n_records, chunk_records):
        r = rec[start:start + chunk_records]
        dtime = r["dtime"] if t3 else r["channel"]  # T2 has no dtime: placeholder, unread
        parts.append(split_records(r["time"], dtime, r["channel"], r["marker"], t3))
    chans, macros, micros, mch, mmac = (np.concatenate(x) if len(parts) > 1 else x[0]
                                        for x in zip(*parts))
    return {"channel": chans, "macrotime": macros.astype(np.int64, copy=False),
            "microtime": micros if t3 else None, "marker_channel": mch,
            "marker_macrotime": mmac.astype(np.int64, copy=False),
            "n_overflows": n_records - chans.size - mch.size}
