"""Small numba kernels (numeric cores; normalisation and units live in the callers).

The g2 correlator has its own module, `g2_kernel`."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def dead_time_mask(t: np.ndarray, dead: float) -> np.ndarray:
    """Keep-mask: photons closer than `dead` to the previous kept photon are dropped."""
    keep = np.ones(t.size, np.bool_)
    last = -1e300
    for i in range(t.size):
        if t[i] - last < dead:
            keep[i] = False
        else:
            last = t[i]
    return keep


@numba.njit(cache=True)
def split_records(time: np.ndarray, dtime: np.ndarray, channel: np.ndarray, marker: np.ndarray,
                  with_dtime: bool):
    """One pass over ptufile's decoded records: photons (channel >= 0) and markers apart.

    Returns (channel, macrotime, microtime, marker_value, marker_time). Output buffers are
    record-sized and returned as slices (one pass; overflow slots are the only spare memory)."""
    n = channel.size
    ch = np.empty(n, np.int8)
    mac = np.empty(n, np.int64)
    mic = np.empty(n if with_dtime else 0, np.int32)
    mval = np.empty(n, np.int8)
    mtime = np.empty(n, np.int64)
    p = 0
    m = 0
    for i in range(n):
        c = channel[i]
        if c >= 0:
            ch[p] = c
            mac[p] = time[i]
            if with_dtime:
                mic[p] = dtime[i]
            p += 1
        elif marker[i] > 0:
            mval[m] = marker[i]
            mtime[m] = time[i]
            m += 1
    return ch[:p], mac[:p], mic[:p] if with_dtime else mic, mval[:m], mtime[:m]
