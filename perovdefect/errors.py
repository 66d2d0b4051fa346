"""Exceptions raised for bad input. The CLI turns every PerovDefectError into a one-line message
and a non-zero exit code, never a traceback."""

from __future__ import annotations


class PerovDefectError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, impossible request)."""


class StructureError(PerovDefectError):
    """Unknown compound, impossible charge, non-Br vacancy site, malformed structure file."""


class ProtocolError(PerovDefectError):
    """An inconsistent calculation protocol (e.g. SOC with a collinear magnetic moment)."""


class ParseError(PerovDefectError):
    """A calculation output that cannot be read (truncated, malformed, missing)."""


class PhotonFileError(PerovDefectError):
    """A TCSPC file that cannot be decoded (wrong magic, truncated, header only)."""


class AnalysisError(PerovDefectError):
    """An analysis that cannot be done on the data given (e.g. g2 from one detector)."""


class CampaignError(PerovDefectError):
    """Bad campaign YAML, a locked embedded LaunchPad, a missing campaign."""


class ReportError(PerovDefectError):
    """Report inputs that are missing, empty or of an unsupported version."""


class UnstableHostError(AnalysisError):
    """The host lies above the convex hull of its competing phases: no chemical-potential region."""


class UnboundStateError(AnalysisError):
    """A charged isolated cluster whose occupied state lies above the vacuum level (unbound)."""
