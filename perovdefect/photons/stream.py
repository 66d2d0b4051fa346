"""PhotonStream: photons (channel, macrotime, microtime) and markers of one TCSPC recording."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perovdefect.errors import AnalysisError, PhotonFileError


@dataclass
class PhotonStream:
    """Time-tagged photons in integer units plus the resolutions that make them physical.

    macrotime: int64, in units of macrotime_resolution_s (T3: sync periods; T2: the global
    resolution, e.g. 1 ps). microtime: T3 only, in units of microtime_resolution_s (TCSPC bin).
    channel: detector channel (int8). Markers are kept apart (marker_channel/marker_macrotime);
    overflow records are resolved and only counted.
    """

    channel: np.ndarray
    macrotime: np.ndarray
    microtime: np.ndarray | None
    macrotime_resolution_s: float
    microtime_resolution_s: float | None
    mode: str
    sync_rate_hz: float | None = None
    record_type: str = ""
    n_records: int = 0
    n_overflows: int = 0
    marker_channel: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    marker_macrotime: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    acquisition_time_s: float | None = None
    n_microtime_bins: int | None = None
    source: str = ""
    header: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.channel.size)

    @property
    def sync_period_s(self) -> float | None:
        return 1.0 / self.sync_rate_hz if self.sync_rate_hz else None

    def times_s(self) -> np.ndarray:
        """Arrival time of each photon (s), macrotime + microtime."""
        t = self.macrotime * self.macrotime_resolution_s
        if self.microtime is not None and self.microtime_resolution_s:
            t = t + self.microtime * self.microtime_resolution_s
        return t

    def times_ps(self) -> np.ndarray:
        """Arrival times as int64 picoseconds (exact for T2 at 1 ps; T3 rounded to 1 ps)."""
        macro_ps = self.macrotime_resolution_s * 1e12
        if self.mode == "T2" and abs(macro_ps - round(macro_ps)) < 1e-9:
            return self.macrotime * int(round(macro_ps))
        t = np.rint(self.macrotime * macro_ps).astype(np.int64)
        if self.microtime is not None and self.microtime_resolution_s:
            t += np.rint(self.microtime * self.microtime_resolution_s * 1e12).astype(np.int64)
        return t

    def microtimes_ns(self) -> np.ndarray:
        """Microtimes (ns after the sync). T2 data has none: AnalysisError."""
        if self.microtime is None or not self.microtime_resolution_s:
            raise AnalysisError(f"{self.source or 'stream'}: a {self.mode} recording has no "
                                "microtimes (TCSPC delays); decays need T3 data")
        return self.microtime * (self.microtime_resolution_s * 1e9)

    def channels(self) -> list[int]:
        return [int(c) for c in np.unique(self.channel)]

    def photons_per_channel(self) -> dict[int, int]:
        ch, n = np.unique(self.channel, return_counts=True)
        return {int(c): int(k) for c, k in zip(ch, n)}

    def duration_s(self) -> float:
        if self.acquisition_time_s:
            return float(self.acquisition_time_s)
        return float(self.macrotime[-1] * self.macrotime_resolution_s) if len(self) else 0.0

    def select(self, mask: np.ndarray) -> PhotonStream:
        """A stream with the photons where `mask` is true (markers kept)."""
        from dataclasses import replace
        return replace(self, channel=self.channel[mask], macrotime=self.macrotime[mask],
                       microtime=None if self.microtime is None else self.microtime[mask])

    def between(self, t0_s: float, t1_s: float) -> PhotonStream:
        """Photons with t0 <= macrotime < t1 (s)."""
        t = self.macrotime * self.macrotime_resolution_s
        return self.select((t >= t0_s) & (t < t1_s))

    def info(self) -> dict[str, Any]:
        """Summary for `perovdefect photons info`."""
        last = (float(self.macrotime[-1] * self.macrotime_resolution_s) if len(self) else None)
        return {"source": self.source, "record_type": self.record_type, "mode": self.mode,
                "number_records": self.n_records, "number_photons": len(self),
                "photons_per_channel": self.photons_per_channel(),
                "number_markers": int(self.marker_channel.size),
                "markers_per_channel": {int(c): int(n) for c, n in zip(
                    *np.unique(self.marker_channel, return_counts=True))},
                "number_overflows": self.n_overflows,
                "number_other_records": int(self.header.get(
                    "records_neither_photon_marker_nor_overflow", 0)),
                "macrotime_resolution_s": self.macrotime_resolution_s,
                "microtime_resolution_s": self.microtime_resolution_s,
                "sync_rate_hz": self.sync_rate_hz,
                "sync_rate_source": self.header.get("sync_rate_source"),
                "acquisition_time_s": self.acquisition_time_s,
                "last_photon_time_s": last, "n_microtime_bins": self.n_microtime_bins}


def check_nonempty(stream: PhotonStream) -> PhotonStream:
    if len(stream) == 0:
        raise PhotonFileError(f"{stream.source}: no photon records in the file")
    return stream
