"""perovdefect: Br-vacancy defect levels in Cs4PbBr6 / CsPbBr3 from DFT, joined with single-particle
photon statistics (TCSPC) in one theory-experiment report.

Layers (data flows top to bottom): structures -> calcs -> workflows -> parsers -> levels, and
photons.io -> photons.analysis; report joins both. See README.md for a tour.
"""

__version__ = "0.1.0"

from perovdefect.errors import PerovDefectError  # noqa: E402,F401
