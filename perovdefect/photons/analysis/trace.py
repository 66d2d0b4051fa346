"""Intensity traces (counts per bin) and intensity histograms."""

from __future__ import annotations

import numpy as np

from perovdefect.errors import AnalysisError
from perovdefect.photons.stream import PhotonStream


def intensity_trace(stream: PhotonStream, bin_width_s: float = 0.01,
                    channels: list[int] | None = None,
                    bin_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(bin start times in s, counts per bin) from t = 0, over the acquisition time.
    bin_index: `photon_bin_index(stream, bin_width_s)` when the caller has it (all channels)."""
    if bin_width_s <= 0:
        raise AnalysisError("bin width must be positive (s)")
    if channels is None:
        idx = photon_bin_index(stream, bin_width_s) if bin_index is None else bin_index
        n_bins = max(int(np.ceil(stream.duration_s() / bin_width_s)),
                     int(idx[-1]) + 1 if idx.size else 1)  # macrotimes are sorted
        return np.arange(n_bins) * bin_width_s, np.bincount(idx, minlength=n_bins)[:n_bins]
    mask = np.ones(len(stream), bool) if channels is None else np.isin(stream.channel, channels)
    ticks_per_bin = bin_width_s / stream.macrotime_resolution_s
    idx = (stream.macrotime[mask] // ticks_per_bin).astype(np.int64) if ticks_per_bin >= 1 else \
        np.floor(stream.macrotime[mask] * stream.macrotime_resolution_s / bin_width_s).astype(
            np.int64)
    n_bins = max(int(np.ceil(stream.duration_s() / bin_width_s)), int(idx.max()) + 1 if idx.size
                 else 1)
    counts = np.bincount(idx, minlength=n_bins)[:n_bins]
    return np.arange(n_bins) * bin_width_s, counts


def photon_bin_index(stream: PhotonStream, bin_width_s: float) -> np.ndarray:
    """The trace bin of every photon (same binning as intensity_trace)."""
    ticks = bin_width_s / stream.macrotime_resolution_s
    if ticks >= 1 and abs(ticks - round(ticks)) < 1e-9 * ticks:
        return stream.macrotime // int(round(ticks))  # integer ticks per bin: exact, faster
    return np.floor(stream.macrotime * (stream.macrotime_resolution_s / bin_width_s)).astype(
        np.int64)


def intensity_histogram(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts-per-bin values, number of bins with that value)."""
    h = np.bincount(np.asarray(counts, dtype=np.int64))
    return np.arange(h.size), h
