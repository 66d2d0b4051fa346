"""Write a PhotonStream as a PicoQuant PTU file (HydraHarp v2 T3 or T2 records).

Hand-written because ptufile's writer (PtuWriter/imwrite) only encodes TCSPC histogram images,
not photon-by-photon streams. Layout from PicoQuant's documented PTU tag format:
magic 'PQTTTR', version, then tags (32-byte ident, int32 index, uint32 type, 8-byte value;
strings followed by their bytes) up to 'Header_End', then 32-bit records.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from perovdefect.photons.stream import PhotonStream

TY_INT8, TY_FLOAT8, TY_BOOL8 = 0x10000008, 0x20000008, 0x00000008
TY_ANSI, TY_EMPTY = 0x4001FFFF, 0xFFFF0008
RT_HYDRAHARP2_T3, RT_HYDRAHARP2_T2 = 0x01010304, 0x01010204
T3_WRAP, T2_WRAP = 1024, 33554432


def _tag(ident: str, typ: int, value, idx: int = -1) -> bytes:
    name = ident.encode().ljust(32, b"\0")
    if typ == TY_ANSI:
        data = value.encode() + b"\0"
        data += b"\0" * (-len(data) % 8)
        return name + struct.pack("<iIq", idx, typ, len(data)) + data
    if typ == TY_FLOAT8:
        return name + struct.pack("<iId", idx, typ, float(value))
    return name + struct.pack("<iIq", idx, typ, int(value))


def encode_t3(stream: PhotonStream) -> np.ndarray:
    """HydraHarp v2 T3 records: special(1) channel(6) dtime(15) nsync(10); overflows as
    special/channel 63 with their count in nsync; markers as special with channel 1-15."""
    if stream.microtime is None:
        raise ValueError("T3 encoding needs microtimes")
    macro = np.concatenate([stream.macrotime, stream.marker_macrotime]).astype(np.int64)
    kind = np.concatenate([np.zeros(len(stream), np.int8), np.ones(stream.marker_channel.size,
                                                                     np.int8)])
    chan = np.concatenate([stream.channel, stream.marker_channel]).astype(np.uint32)
    dtime = np.concatenate([stream.microtime, np.zeros(stream.marker_channel.size, np.int32)])
    order = np.argsort(macro, kind="stable")
    macro, kind, chan, dtime = macro[order], kind[order], chan[order], dtime[order]
    if np.any(dtime >= 2**15) or np.any(chan >= 63):
        raise ValueError("microtime >= 32768 bins or channel >= 63 cannot be encoded in T3")
    epoch = macro // T3_WRAP
    jumps = np.diff(np.concatenate([[0], epoch]))
    # one overflow record (count <= 1023) per block of wraps, before the event that needs it
    n_ovf_records = np.where(jumps > 0, (jumps + 1022) // 1023, 0)
    out = np.empty(len(macro) + int(n_ovf_records.sum()), dtype=np.uint32)
    pos = np.arange(len(macro)) + np.cumsum(n_ovf_records)
    ev = ((kind.astype(np.uint32) << 31) | (chan << 25) | (dtime.astype(np.uint32) << 10)
          | (macro % T3_WRAP).astype(np.uint32))
    out[pos] = ev
    ovf_slots = np.ones(out.size, bool)
    ovf_slots[pos] = False
    # each jump of j wraps becomes ceil(j / 1023) records: 1023, 1023, ..., remainder
    reps = n_ovf_records[n_ovf_records > 0]
    counts = np.full(int(reps.sum()), 1023, dtype=np.uint32)
    counts[np.cumsum(reps) - 1] = jumps[jumps > 0] - 1023 * (reps - 1)
    out[ovf_slots] = (np.uint32(1) << 31) | (np.uint32(63) << 25) | counts
    return out


def write_ptu(path: str | Path, stream: PhotonStream, comment: str = "perovdefect") -> Path:
    """Write `stream` (T3 with microtimes) as a HydraHarp v2 T3 PTU readable by ptufile."""
    path = Path(path)
    records = encode_t3(stream)
    tags = [
        _tag("File_GUID", TY_ANSI, "{00000000-0000-0000-0000-000000000000}"),
        _tag("File_Comment", TY_ANSI, comment),
        _tag("CreatorSW_Name", TY_ANSI, "perovdefect"),
        _tag("Measurement_Mode", TY_INT8, 3),
        _tag("Measurement_SubMode", TY_INT8, 0),
        _tag("MeasDesc_Resolution", TY_FLOAT8, stream.microtime_resolution_s),
        _tag("MeasDesc_GlobalResolution", TY_FLOAT8, stream.macrotime_resolution_s),
        _tag("MeasDesc_AcquisitionTime", TY_INT8, int(round((stream.acquisition_time_s or 0)
                                                             * 1e3))),
        _tag("HW_Type", TY_ANSI, "HydraHarp"),
        _tag("HW_InpChannels", TY_INT8, int(max(stream.channels(), default=0)) + 2),
        _tag("TTResult_SyncRate", TY_INT8, int(round(stream.sync_rate_hz or 0))),
        _tag("TTResult_NumberOfRecords", TY_INT8, records.size),
        _tag("TTResultFormat_TTTRRecType", TY_INT8, RT_HYDRAHARP2_T3),
        _tag("TTResultFormat_BitsPerRecord", TY_INT8, 32),
        _tag("Header_End", TY_EMPTY, 0),
    ]
    with open(path, "wb") as fh:
        fh.write(b"PQTTTR\0\0" + b"1.0.00\0\0" + b"".join(tags))
        fh.write(records.astype("<u4").tobytes())
    return path
