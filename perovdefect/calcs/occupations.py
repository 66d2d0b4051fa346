"""Code-neutral reading of band occupations: where a constrained-occupation (DeltaSCF) state
has its promoted electron and its hole."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def promotion(channel: ArrayLike) -> tuple[int, int] | None:
    """(hole, electron) band indices of one spin channel's occupations (0..1 per state, band
    order): the lowest empty band below the highest occupied one, and that occupied band; None
    for an aufbau channel (nothing empty below an occupied band)."""
    occ = np.asarray(channel, float)
    occupied = np.nonzero(occ > 0.5)[0]
    if not len(occupied):
        return None
    top = int(occupied.max())
    empty_below = np.nonzero(occ[:top] <= 0.5)[0]
    return (int(empty_below.min()), top) if len(empty_below) else None
