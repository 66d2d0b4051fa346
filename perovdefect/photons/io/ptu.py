"""PicoQuant PTU (all T2/T3 record types) into a PhotonStream.

ptufile parses the tag header; perovdefect then validates every tag it uses before trusting it
(`_checked_metadata`: required tags present and of the right type, resolutions finite and > 0,
a T3 sync rate > 0, a known record type that agrees with the measurement mode, the record offset
and count within the file) so that a garbled or truncated file is a PhotonFileError naming the
file and the tag. The records of every layout listed in `records.PTU_RECORD_LAYOUT` (PicoHarp,
HydraHarp v1/v2, TimeHarp 260, MultiHarp/PicoHarp 330: every record type ptufile knows) are
decoded by `records.decode_records` in one parallel pass; decoder="ptufile" goes through
ptufile's own decode_records and a split of its output (the reference the tests compare with).

The raw record words are read here with numpy (memory-mapped above MEMMAP_ABOVE_RECORDS, 4 bytes
each, never all in memory) rather than through `PtuFile.read_records`, whose `memmap` argument
exists in ptufile < 2026.6 only: the reader works with every ptufile that pip may install
(>= 2024.2.8, Python 3.10-3.13). Only the photon arrays (13 bytes per photon) need to fit in
memory; files whose photons do not fit are read piece by piece with `iter_ptu`.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from perovdefect.errors import PerovDefectError, PhotonFileError
from perovdefect.photons.io import CHUNK_RECORDS
from perovdefect.photons.io.checks import (MAX_RESOLUTION_S, MAX_SYNC_RATE_HZ,
                                           MIN_RESOLUTION_S, acquisition_time, guard_errors,
                                           guard_iter_errors, integer, positive_finite,
                                           record_count)
from perovdefect.photons.io.records import (PTU_RECORD_LAYOUT, T3_LAYOUTS,
                                            iter_streams_from_records, stream_from_records)
from perovdefect.photons.stream import PhotonStream, check_nonempty

MEMMAP_ABOVE_RECORDS = 50_000_000

# tags every TTTR PTU file must carry (PicoQuant's PTU specification)
REQUIRED_TAGS = ("Measurement_Mode", "TTResultFormat_TTTRRecType", "MeasDesc_GlobalResolution",
                 "TTResult_SyncRate")


MAX_HEADER_WARNINGS = 10  # ptufile complaints about a damaged tag header kept as warnings


class _CollectLog(logging.Handler):
    """Collects ptufile's log messages (damaged tags) instead of printing them on stderr."""

    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def _open(path: Path, notes: list[str]):
    """ptufile.PtuFile(path); ptufile's warnings about the tag header go into `notes` (the
    stream's header["warnings"], at most MAX_HEADER_WARNINGS) rather than onto stderr."""
    import ptufile
    log = logging.getLogger("ptufile")
    messages: list[str] = []
    handler, propagate = _CollectLog(messages), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        return ptufile.PtuFile(path)
    except FileNotFoundError:
        raise PhotonFileError(f"{path}: no such file") from None
    except Exception as exc:  # ptufile's own errors are clear but come as a traceback: re-raise
        raise PhotonFileError(f"{path}: not a readable PTU file ({exc})") from exc
    finally:
        log.removeHandler(handler)
        log.propagate = propagate
        notes.extend(f"{path}: ptufile: {m}" for m in messages[:MAX_HEADER_WARNINGS])
        if len(messages) > MAX_HEADER_WARNINGS:
            notes.append(f"{path}: ptufile: {len(messages) - MAX_HEADER_WARNINGS} more "
                         "warnings about the tag header")


def _record_offset(ptu, path: Path) -> int:
    """Byte position of the first record (ptufile's `record_offset`; older releases only have
    the private `_data_offset`)."""
    for name in ("record_offset", "_data_offset"):
        try:
            value = getattr(ptu, name)
        except Exception:  # a property that fails on a garbled header
            continue
        if value is not None:
            return integer(value, path, "record offset (end of the tag header, bytes)")
    raise PhotonFileError(f"{path}: cannot locate the end of the tag header (Header_End)")


def _checked_metadata(ptu, path: Path, allow_truncated: bool = False,
                      notes: list[str] | None = None) -> dict[str, Any]:
    """PhotonStream fields from the tag header, every tag validated (PhotonFileError naming the
    file and the tag otherwise); plus "layout", "offset" (bytes) and "n_records" to decode.
    notes: warnings so far (kept in header["warnings"])."""
    tags = getattr(ptu, "tags", None)
    if not isinstance(tags, dict):
        raise PhotonFileError(f"{path}: no tag header")
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        raise PhotonFileError(f"{path}: required PTU tag(s) missing: {', '.join(missing)} "
                              "(garbled or not a TTTR file)")
    mode = integer(tags["Measurement_Mode"], path, "Measurement_Mode")
    if mode not in (2, 3):
        raise PhotonFileError(f"{path}: header field Measurement_Mode = {mode} is not a TTTR "
                              "mode (2 = T2, 3 = T3)")
    rectype = integer(tags["TTResultFormat_TTTRRecType"], path, "TTResultFormat_TTTRRecType")
    layout = PTU_RECORD_LAYOUT.get(rectype)
    if layout is None:
        raise PhotonFileError(f"{path}: unknown record type TTResultFormat_TTTRRecType = "
                              f"0x{rectype & 0xFFFFFFFF:08X} (known: "
                              + ", ".join(f"0x{k:08X}" for k in sorted(PTU_RECORD_LAYOUT)) + ")")
    t3 = mode == 3
    if t3 != (layout in T3_LAYOUTS):
        raise PhotonFileError(f"{path}: Measurement_Mode = {mode} (T{mode}) contradicts record "
                              f"type 0x{rectype:08X} (T{3 if layout in T3_LAYOUTS else 2})")
    bits = tags.get("TTResultFormat_BitsPerRecord", 32)
    if integer(bits, path, "TTResultFormat_BitsPerRecord") not in (0, 32):
        raise PhotonFileError(f"{path}: header field TTResultFormat_BitsPerRecord = {bits}: "
                              "only 32-bit records exist")
    global_res = positive_finite(tags["MeasDesc_GlobalResolution"], path,
                                 "MeasDesc_GlobalResolution", "s", MIN_RESOLUTION_S,
                                 MAX_RESOLUTION_S)
    sync = integer(tags["TTResult_SyncRate"], path, "TTResult_SyncRate (Hz)", lo=0,
                   hi=int(MAX_SYNC_RATE_HZ))
    micro_res = None
    n_bins = None
    if t3:
        if sync <= 0:
            raise PhotonFileError(f"{path}: header field TTResult_SyncRate = {sync} Hz: a T3 "
                                  "recording needs a sync rate > 0")
        if "MeasDesc_Resolution" not in tags:
            raise PhotonFileError(f"{path}: required PTU tag MeasDesc_Resolution (TCSPC bin) "
                                  "missing in a T3 file")
        micro_res = positive_finite(tags["MeasDesc_Resolution"], path, "MeasDesc_Resolution",
                                    "s", MIN_RESOLUTION_S, MAX_RESOLUTION_S)
        n_bins = max(1, math.floor(global_res / micro_res))  # as ptufile
    acq = acquisition_time(tags.get("MeasDesc_AcquisitionTime"), path,
                           "MeasDesc_AcquisitionTime")
    offset = _record_offset(ptu, path)
    announced = tags.get("TTResult_NumberOfRecords", 0)
    notes = list(notes or [])
    if integer(announced, path, "TTResult_NumberOfRecords") == 0:
        # as ptufile: a zero count (acquisition interrupted) means "the rest of the file"
        announced = max(0, (path.stat().st_size - offset) // 4)
        if announced:
            notes.append(f"{path}: TTResult_NumberOfRecords is 0; decoding the {announced} "
                         "records that follow the header")
    n_records = record_count(path, offset, announced, allow_truncated, notes,
                             "TTResult_NumberOfRecords")
    name = next((k for k, v in _record_type_names().items() if v == rectype), f"0x{rectype:08X}")
    return dict(
        macrotime_resolution_s=global_res, microtime_resolution_s=micro_res,
        mode="T3" if t3 else "T2", sync_rate_hz=float(sync) or None, record_type=name,
        n_records=n_records, acquisition_time_s=acq, source=str(path), n_microtime_bins=n_bins,
        header={"creator": str(tags.get("CreatorSW_Name", "")),
                "hardware": str(tags.get("HW_Type", "")), "warnings": notes},
        layout=layout, offset=offset)


def _record_type_names() -> dict[str, int]:
    """ptufile's PtuRecordType names (e.g. 'HydraHarp2T3') by value."""
    try:
        import ptufile
        return {m.name: int(m.value) for m in ptufile.PtuRecordType}
    except Exception:  # an older or newer ptufile without the enum: hex codes instead
        return {}


def _raw_records(path: Path, offset: int, n_records: int, memmap: bool) -> np.ndarray:
    """The n_records 32-bit record words at byte `offset` (read-only memmap or in memory)."""
    if memmap:
        return np.memmap(path, dtype="<u4", mode="r", offset=offset, shape=(n_records,))
    with open(path, "rb") as fh:
        fh.seek(offset)
        raw = np.fromfile(fh, dtype="<u4", count=n_records)
    if raw.size != n_records:
        raise PhotonFileError(f"{path}: {raw.size} records read, {n_records} expected "
                              "(file changed while reading?)")
    return raw


def _stream_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("layout", "offset")}


@guard_errors
def read_ptu(path: str | Path, decoder: Literal["auto", "ptufile"] = "auto",
             chunk_records: int = CHUNK_RECORDS, allow_truncated: bool = False) -> PhotonStream:
    """Read a .ptu file. Errors (wrong magic, garbled tags, truncated, header only) name the file.

    decoder: "auto" (perovdefect's decoder) or "ptufile" (ptufile's decode_records;
    chunk_records bounds its split pass). allow_truncated: decode the complete records of a file
    cut short (default: error); the stream's header["warnings"] says so."""
    path = Path(path)
    if decoder not in ("auto", "ptufile"):
        raise PerovDefectError(f"unknown decoder {decoder!r} (auto, ptufile)")
    notes: list[str] = []
    with _open(path, notes) as ptu:
        meta = _checked_metadata(ptu, path, allow_truncated, notes)
        n_records = meta["n_records"]
        raw = _raw_records(path, meta["offset"], n_records, n_records > MEMMAP_ABOVE_RECORDS)
        if decoder == "auto":
            return stream_from_records(raw, meta["layout"], _stream_meta(meta))
        try:  # errors inside ptufile (bad record size, decoder): name the file
            fields = _decode_with_ptufile(ptu, raw, meta["mode"] == "T3", n_records,
                                          chunk_records)
        except Exception as exc:
            raise PhotonFileError(f"{path}: cannot decode records ({exc})") from exc
    return check_nonempty(PhotonStream(**fields, **_stream_meta(meta)))


@guard_iter_errors
def iter_ptu(path: str | Path, chunk_records: int = CHUNK_RECORDS,
             allow_truncated: bool = False) -> Iterator[PhotonStream]:
    """The file as consecutive PhotonStreams of chunk_records records each (memory-mapped, so a
    file larger than memory is fine). Macrotimes are absolute (overflows carried over from piece
    to piece); n_records is the piece's."""
    path = Path(path)
    notes: list[str] = []
    with _open(path, notes) as ptu:
        meta = _checked_metadata(ptu, path, allow_truncated, notes)
    raw = _raw_records(path, meta["offset"], meta["n_records"], memmap=True)
    yield from iter_streams_from_records(raw, meta["layout"], _stream_meta(meta), chunk_records)


def _decode_kwargs(ptu, n_records: int) -> dict[str, Any]:
    """`out=` for ptufile's decode_records where the installed ptufile has it (memory-mapped
    output above MEMMAP_ABOVE_RECORDS)."""
    try:
        params = inspect.signature(ptu.decode_records).parameters
    except (TypeError, ValueError):
        return {}
    if "out" in params and n_records > MEMMAP_ABOVE_RECORDS:
        return {"out": "memmap"}
    return {}


def _decode_with_ptufile(ptu, raw: np.ndarray, t3: bool, n_records: int,
                         chunk_records: int) -> dict:
    """ptufile's decode_records of the (validated) raw records, then photons and markers split
    apart chunk by chunk. Overflow and any other non-photon, non-marker records are counted
    together as overflows here (ptufile does not tell them apart)."""
    from perovdefect.photons.analysis.kernels import split_records
    rec = ptu.decode_records(raw, **_decode_kwargs(ptu, n_records))
    parts = []
    chunk_records = max(1, int(chunk_records))
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
