"""Defect levels: host band edges, in-gap states of a defect calculation, comparison with PL."""

from perovdefect.levels.ingap import DefectLevels, find_in_gap_states, soc_corrected_gap
from perovdefect.levels.pl import PLPeak, compare_with_pl, fit_pl_spectrum, read_spectrum

__all__ = ["DefectLevels", "PLPeak", "compare_with_pl", "find_in_gap_states", "fit_pl_spectrum",
           "read_spectrum", "soc_corrected_gap"]
