"""Levels the counts cannot tell apart, merged by one stated criterion.

The change-point levels come from a BIC over segment rates; when the segments of one state are
overdispersed (segments that straddle short excursions, slow drifts of the rate) BIC may cut that
state into two levels a few counts per bin apart. Two adjacent emitting levels (ordered by rate)
are one level when both hold:

1. their intensities overlap as Poisson counts of one trace bin: the difference of their mean
   counts per bin is below MERGE_SIGMA (2) Poisson standard deviations,
   |mu_a - mu_b| < 2 sqrt((mu_a + mu_b) / 2), so a bin's counts cannot say which level it came
   from (misassigned in more than about one bin in six);
2. their lifetimes are equal: the mono-exponential lifetimes agree within 3 combined standard
   errors or within 10 % (the spread of fits to the same state), so no second observable tells
   them apart either.

Levels without a decay fit (T2 data, too few photons), background levels and levels cut by the
user's thresholds are never merged. Hand-written: no photon-statistics library ships a merge
rule for change-point levels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MERGE_SIGMA = 2.0          # Poisson standard deviations of one trace bin
LIFETIME_SIGMA = 3.0       # combined standard errors of the two lifetimes
LIFETIME_REL = 0.10        # relative lifetime difference always taken as equal
CRITERION = (f"adjacent emitting levels merged when their mean counts per bin differ by less "
             f"than {MERGE_SIGMA:g} Poisson sigma of one bin and their lifetimes agree within "
             f"{LIFETIME_SIGMA:g} sigma or {100 * LIFETIME_REL:g} %")


@dataclass(frozen=True)
class LevelView:
    """What the criterion reads of one level: mean counts per trace bin, emitting or not, the
    mono-exponential lifetime and its error (ns; None without a fit)."""

    counts_per_bin: float
    emitting: bool
    tau_ns: float | None
    tau_err_ns: float | None


def separation_sigma(a: LevelView, b: LevelView) -> float:
    """|mu_a - mu_b| in Poisson standard deviations of one trace bin."""
    mean = max(0.5 * (a.counts_per_bin + b.counts_per_bin), 1e-12)
    return abs(a.counts_per_bin - b.counts_per_bin) / math.sqrt(mean)


def same_lifetime(a: LevelView, b: LevelView) -> bool:
    """Lifetimes equal within LIFETIME_SIGMA combined errors or LIFETIME_REL."""
    if a.tau_ns is None or b.tau_ns is None:
        return False
    err = math.hypot(a.tau_err_ns or 0.0, b.tau_err_ns or 0.0)
    return abs(a.tau_ns - b.tau_ns) <= max(LIFETIME_SIGMA * err,
                                           LIFETIME_REL * max(a.tau_ns, b.tau_ns))


def indistinguishable(a: LevelView, b: LevelView) -> bool:
    """The module's criterion for two levels."""
    return (a.emitting and b.emitting and separation_sigma(a, b) < MERGE_SIGMA
            and same_lifetime(a, b))


def closest_indistinguishable_pair(levels: list[LevelView]) -> int | None:
    """Index i of the adjacent pair (i, i + 1) (levels ordered by rate) that the criterion
    merges, the closest in sigma first; None when no pair qualifies."""
    pairs = [(separation_sigma(levels[i], levels[i + 1]), i) for i in range(len(levels) - 1)
             if indistinguishable(levels[i], levels[i + 1])]
    return min(pairs)[1] if pairs else None
