"""Defect levels: host band edges, classified in-gap states of a defect calculation, comparison
with PL, and the per-model analysis document."""

from perovdefect.levels.ingap import (DefectLevels, InGapState, Verdict, find_in_gap_states,
                                      soc_corrected_gap)
from perovdefect.levels.pl import PLComparison, PLPeak, compare_with_pl, fit_pl_spectrum, \
    read_spectrum

__all__ = ["DefectLevels", "InGapState", "PLComparison", "PLPeak", "Verdict", "compare_with_pl",
           "find_in_gap_states", "fit_pl_spectrum", "read_spectrum", "soc_corrected_gap"]
