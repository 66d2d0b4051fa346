"""Legacy PicoQuant files: HydraHarp HT3 (format 1.0 and 2.0), HT2, PicoHarp PT3 and PT2.

Headers hand-written with numpy from PicoQuant's documented structs, because no maintained
library reads these containers on current Python (ptufile reads PTU only; phconvert refuses HT3
2.0; tttrlib labels PicoHarp T3 markers as photons). Their record words have the PTU layouts and
go through the same decoder (`records.decode_records`): record meaning decides photon vs.
marker vs. overflow, never the channel number alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import PhotonFileError
from perovdefect.photons.io.checks import (MAX_RESOLUTION_S, MAX_SYNC_RATE_HZ, MIN_RESOLUTION_S,
                                           acquisition_time, guard_errors, guard_iter_errors,
                                           integer, positive_finite, record_count)
from perovdefect.photons.io.records import (HYDRAHARP_T2_V1, HYDRAHARP_T2_V2, HYDRAHARP_T3_V1,
                                            HYDRAHARP_T3_V2, PICOHARP_T2, PICOHARP_T3,
                                            iter_streams_from_records, stream_from_records)
from perovdefect.photons.stream import PhotonStream

_TXT = [("Ident", "S16"), ("FormatVersion", "S6"), ("CreatorName", "S18"),
        ("CreatorVersion", "S12"), ("FileTime", "S18"), ("CRLF", "S2"), ("Comment", "S256")]
_DISP_PARAMS_REPEAT = [("DispCurves", "<i4", (16,)), ("Params", "<f4", (9,)),
                       ("RepeatMode", "<i4"), ("RepeatsPerCurve", "<i4"), ("RepeatTime", "<i4"),
                       ("RepeatWaitTime", "<i4"), ("ScriptName", "S20")]
_HH_BIN = np.dtype(_TXT + [
    ("NumberOfCurves", "<i4"), ("BitsPerRecord", "<i4"), ("ActiveCurve", "<i4"),
    ("MeasurementMode", "<i4"), ("SubMode", "<i4"), ("Binning", "<i4"), ("Resolution", "<f8"),
    ("Offset", "<i4"), ("Tacq", "<i4"), ("StopAt", "<u4"), ("StopOnOvfl", "<i4"),
    ("Restart", "<i4"), ("DispLinLog", "<i4"), ("DispTimeFrom", "<i4"), ("DispTimeTo", "<i4"),
    ("DispCountsFrom", "<i4"), ("DispCountsTo", "<i4")] + _DISP_PARAMS_REPEAT + [
    ("HardwareIdent", "S16"), ("HardwarePartNo", "S8"), ("HardwareSerial", "<i4"),
    ("nModulesPresent", "<i4"), ("ModuleInfo", "<i4", (20,)), ("BaseResolution", "<f8"),
    ("InputsEnabled", "<u8"), ("InpChansPresent", "<i4"), ("RefClockSource", "<i4"),
    ("ExtDevices", "<i4"), ("MarkerSettings", "<i4"), ("SyncDivider", "<i4"),
    ("SyncCFDLevel", "<i4"), ("SyncCFDZeroCross", "<i4"), ("SyncOffset", "<i4")])
_HH_CHANNEL = np.dtype([("InputModuleIndex", "<i4"), ("InputCFDLevel", "<i4"),
                        ("InputCFDZeroCross", "<i4"), ("InputOffset", "<i4")])
# followed by InputRate (int32) per channel, then the time-tagging header
_HH_TT = np.dtype([("SyncRate", "<i4"), ("StopAfter", "<i4"), ("StopReason", "<i4"),
                   ("ImgHdrSize", "<i4"), ("nRecords", "<u8")])
_PH_BIN = np.dtype(_TXT + [
    ("NumberOfCurves", "<i4"), ("BitsPerRecord", "<i4"), ("RoutingChannels", "<i4"),
    ("NumberOfBoards", "<i4"), ("ActiveCurve", "<i4"), ("MeasurementMode", "<i4"),
    ("SubMode", "<i4"), ("RangeNo", "<i4"), ("Offset", "<i4"), ("Tacq", "<i4"),
    ("StopAt", "<u4"), ("StopOnOvfl", "<i4"), ("Restart", "<i4"), ("DispLinLog", "<i4"),
    ("DispTimeFrom", "<i4"), ("DispTimeTo", "<i4"), ("DispCountsFrom", "<i4"),
    ("DispCountsTo", "<i4")] + _DISP_PARAMS_REPEAT + [
    ("HardwareIdent", "S16"), ("HardwarePartNo", "S8"), ("HardwareSerial", "<i4"),
    ("SyncDivider", "<i4"), ("CFDZeroCross0", "<i4"), ("CFDLevel0", "<i4"),
    ("CFDZeroCross1", "<i4"), ("CFDLevel1", "<i4"), ("Resolution", "<f4"),
    ("RouterModelCode", "<i4"), ("RouterEnabled", "<i4"), ("Router", "<i4", (24,)),
    ("ExtDevices", "<i4"), ("Reserved1", "<i4"), ("Reserved2", "<i4"), ("InpRate0", "<i4"),
    ("InpRate1", "<i4"), ("StopAfter", "<i4"), ("StopReason", "<i4"), ("nRecords", "<i4"),
    ("ImgHdrSize", "<i4")])

def _read_struct(buf: bytes, dtype: np.dtype, offset: int, path: Path, what: str):
    if offset < 0 or len(buf) < offset + dtype.itemsize:
        raise PhotonFileError(f"{path}: truncated {what} header ({len(buf)} bytes, "
                              f"{offset + dtype.itemsize} needed)")
    return np.frombuffer(buf, dtype, count=1, offset=offset)[0], offset + dtype.itemsize


def _records(path: Path, offset: int, n: int, allow_truncated: bool,
             notes: list[str], field: str = "nRecords") -> np.ndarray:
    """The records (read-only memmap) after a validated offset and count (see
    `checks.record_count`)."""
    n = record_count(path, offset, n, allow_truncated, notes, field)
    return np.memmap(path, dtype="<u4", mode="r", offset=offset, shape=(n,))


@guard_errors
def read_legacy(path: str | Path, allow_truncated: bool = False) -> PhotonStream:
    """Read .ht3 / .ht2 / .pt3 / .pt2 into a PhotonStream (overflows resolved, markers apart).

    A file holding fewer records than its header announces is an error unless allow_truncated,
    in which case the complete records present are decoded and the stream's header["warnings"]
    says so."""
    rec, layout, meta = open_legacy(path, allow_truncated)
    return stream_from_records(rec, layout, meta)


@guard_iter_errors
def iter_legacy(path: str | Path, chunk_records: int, allow_truncated: bool = False
                ) -> Iterator[PhotonStream]:
    """The file as consecutive PhotonStreams of chunk_records records each (memory-mapped;
    macrotimes absolute, overflows carried from piece to piece)."""
    rec, layout, meta = open_legacy(path, allow_truncated)
    yield from iter_streams_from_records(rec, layout, meta, chunk_records)


@guard_errors
def open_legacy(path: str | Path, allow_truncated: bool = False
                ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Parse and validate the header: (records as a read-only memmap, record layout,
    PhotonStream fields other than the photons). Every header number used is checked (sync
    rate > 0 in T3, resolutions finite and > 0, header size and record count within the file);
    a failure is a PhotonFileError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise PhotonFileError(f"{path}: no such file")
    with path.open("rb") as fh:
        head = fh.read(16)
    ident = head[:16].rstrip(b"\0 ")
    if ident.startswith(b"HydraHarp"):
        return _open_hydraharp(path, allow_truncated)
    if ident.startswith(b"PicoHarp"):
        return _open_picoharp(path, allow_truncated)
    raise PhotonFileError(f"{path}: unknown legacy TTTR file (ident {ident[:16]!r}); expected "
                          "HydraHarp (.ht2/.ht3) or PicoHarp (.pt2/.pt3)")


def _tttr_mode(hdr, path: Path) -> int:
    mode = int(hdr["MeasurementMode"])
    if mode not in (2, 3):
        raise PhotonFileError(f"{path}: header field MeasurementMode = {mode} is not a TTTR "
                              "mode (2 or 3)")
    return mode


def _records_and_meta(path: Path, hdr, offset: int, n_records: int, allow_truncated: bool,
                      record_type: str, header: dict[str, Any]) -> tuple[np.ndarray, dict]:
    """The records (memmap) and the PhotonStream fields both legacy headers share; a truncation
    allowed by allow_truncated is noted in header["warnings"]."""
    notes: list[str] = []
    acq = acquisition_time(int(hdr["Tacq"]), path, "Tacq")
    rec = _records(path, offset, n_records, allow_truncated, notes)
    return rec, dict(record_type=record_type, n_records=int(rec.size),
                     acquisition_time_s=acq, source=str(path),
                     header=dict(header, warnings=notes))


def _header_size(value: int, path: Path, field: str = "ImgHdrSize") -> int:
    """Bytes of the imaging header (`value` 32-bit words; must be >= 0 and fit in the file)."""
    words = integer(int(value), path, field, lo=0)
    size = path.stat().st_size
    if 4 * words > size:
        raise PhotonFileError(f"{path}: header field {field} = {words} words ({4 * words} "
                              f"bytes) is larger than the file ({size} bytes)")
    return 4 * words


def _t3_timing(path: Path, sync: float, res_s: float, sync_field: str,
               res_field: str) -> tuple[float, float, int]:
    """(sync rate Hz, microtime resolution s, microtime bins per sync period) of a T3 header,
    validated: sync rate finite and > 0, resolution finite and > 0."""
    sync = positive_finite(sync, path, f"{sync_field} (sync rate)", "Hz", 0.0, MAX_SYNC_RATE_HZ)
    res = positive_finite(res_s, path, f"{res_field} (TCSPC resolution)", "s",
                          MIN_RESOLUTION_S, MAX_RESOLUTION_S)
    return sync, res, max(1, int(round(1.0 / sync / res)))


def _open_hydraharp(path: Path, allow_truncated: bool) -> tuple[np.ndarray, int, dict]:
    with path.open("rb") as fh:
        buf = fh.read(64 * 1024)
    hdr, off = _read_struct(buf, _HH_BIN, 0, path, "HydraHarp")
    nch = int(hdr["InpChansPresent"])
    if not 0 < nch <= 64:
        raise PhotonFileError(f"{path}: header field InpChansPresent = {nch}: implausible "
                              "number of input channels (1-64)")
    off += nch * (_HH_CHANNEL.itemsize + 4)  # channel settings, then one InputRate each
    tt, off = _read_struct(buf, _HH_TT, off, path, "time-tagging")
    off += _header_size(tt["ImgHdrSize"], path)
    version = hdr["FormatVersion"].rstrip(b"\0 ").decode(errors="replace")
    mode = _tttr_mode(hdr, path)
    v1 = version.startswith("1")
    if mode == 3:  # validate the timing before the records (a bad header is named as such)
        sync, res, n_bins = _t3_timing(path, int(tt["SyncRate"]),
                                       float(hdr["Resolution"]) * 1e-12, "SyncRate",
                                       "Resolution")
    else:
        base_ps = float(hdr["BaseResolution"])
        base = 1e-12 if base_ps == 0 else positive_finite(  # 0: not recorded, 1 ps
            base_ps * 1e-12, path, "BaseResolution", "s", MIN_RESOLUTION_S, MAX_RESOLUTION_S)
        sync_t2 = integer(int(tt["SyncRate"]), path, "SyncRate (Hz)", lo=0,
                          hi=int(MAX_SYNC_RATE_HZ))
    rec, meta = _records_and_meta(path, hdr, off, int(tt["nRecords"]), allow_truncated,
                                  f"HydraHarp T{mode} (HT{mode} {version})",
                                  {"format_version": version, "input_channels": nch})
    if mode == 3:
        meta.update(macrotime_resolution_s=1.0 / sync, microtime_resolution_s=res, mode="T3",
                    sync_rate_hz=sync, n_microtime_bins=n_bins)
        return rec, HYDRAHARP_T3_V1 if v1 else HYDRAHARP_T3_V2, meta
    meta.update(macrotime_resolution_s=base, microtime_resolution_s=None, mode="T2",
                sync_rate_hz=float(sync_t2) or None)
    return rec, HYDRAHARP_T2_V1 if v1 else HYDRAHARP_T2_V2, meta


def _open_picoharp(path: Path, allow_truncated: bool) -> tuple[np.ndarray, int, dict]:
    with path.open("rb") as fh:
        buf = fh.read(64 * 1024)
    hdr, off = _read_struct(buf, _PH_BIN, 0, path, "PicoHarp")
    off += _header_size(hdr["ImgHdrSize"], path)
    mode = _tttr_mode(hdr, path)
    if mode == 3:
        sync, res, _ = _t3_timing(path, int(hdr["InpRate0"]), float(hdr["Resolution"]) * 1e-9,
                                  "InpRate0", "Resolution")
    rec, meta = _records_and_meta(path, hdr, off, int(hdr["nRecords"]), allow_truncated,
                                  f"PicoHarp T{mode} (PT{mode})", {})
    if mode == 3:
        meta.update(macrotime_resolution_s=1.0 / sync, microtime_resolution_s=res, mode="T3",
                    sync_rate_hz=sync, n_microtime_bins=4096)
        return rec, PICOHARP_T3, meta
    meta.update(macrotime_resolution_s=4e-12, microtime_resolution_s=None, mode="T2")
    return rec, PICOHARP_T2, meta
