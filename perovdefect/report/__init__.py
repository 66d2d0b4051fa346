"""The joint theory-experiment report (HTML + PNG + JSON + PDF)."""

from perovdefect.report.build import (ReportInputs, analyses_from_documents, build_report,
                                      campaign_extras, load_campaign_results, load_photon_stats,
                                      rebuild_report)
from perovdefect.report.model import ReportModel

__all__ = ["ReportInputs", "ReportModel", "analyses_from_documents", "build_report",
           "campaign_extras", "load_campaign_results", "load_photon_stats", "rebuild_report"]
