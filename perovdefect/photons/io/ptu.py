"""PicoQuant PTU (all T2/T3 record types) through ptufile, into a PhotonStream.

Large files: records are decoded by ptufile into a memory-mapped recarray (a temporary file)
and photons/markers are extracted from it chunk by chunk, so only the photon arrays (11 bytes
per photon) need to fit in memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perovdefect.errors import PhotonFileError
from perovdefect.photons.stream import PhotonStream, check_nonempty

CHUNK_RECORDS = 20_000_000
MEMMAP_ABOVE_RECORDS = 50_000_000


def read_ptu(path: str | Path, chunk_records: int = CHUNK_RECORDS) -> PhotonStream:
    """Read a .ptu file. Errors (wrong magic, truncated, header only) name the file."""
    import ptufile
    path = Path(path)
    try:
        ptu = ptufile.PtuFile(path)
    except FileNotFoundError:
        raise PhotonFileError(f"{path}: no such file") from None
    except Exception as exc:  # ptufile's own errors are clear but come as a traceback: re-raise
        raise PhotonFileError(f"{path}: not a readable PTU file ({exc})") from exc
    with ptu:
        n_records = int(ptu.number_records)
        expected = ptu.record_offset + n_records * 4
        size = path.stat().st_size
        if n_records == 0:
            raise PhotonFileError(f"{path}: header only, no TTTR records")
        if size < expected:
            raise PhotonFileError(f"{path}: truncated: header announces {n_records} records "
                                  f"({expected} bytes) but the file has {size} bytes")
        t3 = bool(ptu.is_t3)
        try:
            out = "memmap" if n_records > MEMMAP_ABOVE_RECORDS else None
            rec = ptu.decode_records(out=out)
        except Exception as exc:  # decoder errors inside ptufile: name the file
            raise PhotonFileError(f"{path}: cannot decode records ({exc})") from exc
        from perovdefect.photons.analysis.kernels import split_records
        parts = []
        for start in range(0, n_records, chunk_records):
            r = rec[start:start + chunk_records]
            dtime = r["dtime"] if t3 else r["channel"]  # T2 has no dtime: placeholder, unread
            parts.append(split_records(r["time"], dtime, r["channel"], r["marker"], t3))
        chans, macros, micros, mch, mmac = (np.concatenate(x) if len(parts) > 1 else x[0]
                                            for x in zip(*parts))
        n_photon_records = chans.size
        n_markers = mch.size
        stream = PhotonStream(
            channel=chans, macrotime=macros, microtime=micros if t3 else None,
            macrotime_resolution_s=float(ptu.global_resolution),
            microtime_resolution_s=float(ptu.tcspc_resolution) if t3 else None,
            mode="T3" if t3 else "T2", sync_rate_hz=float(ptu.syncrate) or None,
            record_type=str(ptu.record_type.name if hasattr(ptu.record_type, "name")
                            else ptu.record_type),
            n_records=n_records, n_overflows=n_records - n_photon_records - n_markers,
            marker_channel=mch, marker_macrotime=mmac,
            acquisition_time_s=_acquisition_time(ptu), source=str(path),
            n_microtime_bins=int(ptu.number_bins_in_period) if t3 else None,
            header={"creator": str(ptu.tags.get("CreatorSW_Name", "")),
                    "hardware": str(ptu.tags.get("HW_Type", ""))})
    return check_nonempty(stream)


def _acquisition_time(ptu) -> float | None:
    ms = ptu.tags.get("MeasDesc_AcquisitionTime")
    return float(ms) / 1e3 if ms else None
