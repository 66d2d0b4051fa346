"""PhotonStats: the result document of a single-particle analysis (JSON, units in names)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perovdefect.errors import ReportError

SCHEMA_VERSION = 1


@dataclass
class PhotonStats:
    """Everything a report needs about one recording: file info, trace (counts per bin of
    bin_width_s), intensity levels with their decay fits (ns), change-point segments, g2 with
    g2(0) and M, FLID, and optionally <N> and the power series."""

    source: str
    info: dict[str, Any]
    bin_width_s: float
    trace_counts: list[int]
    levels: list[dict[str, Any]]
    n_levels: int
    n_emitting_levels: int
    decay_overall: dict[str, Any] | None = None
    decay_histograms: dict[str, Any] = field(default_factory=dict)
    segments: list[dict[str, Any]] = field(default_factory=list)
    g2: dict[str, Any] | None = None
    flid: dict[str, Any] | None = None
    excitation_N: float | None = None
    power_series: dict[str, Any] | None = None
    background_counts_per_bin: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), default=_default)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path: str | Path) -> PhotonStats:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f"{path}: not a readable PhotonStats JSON ({exc})") from exc
        if not isinstance(d, dict) or d.get("schema_version") != SCHEMA_VERSION:
            raise ReportError(f"{path}: PhotonStats schema version "
                              f"{d.get('schema_version') if isinstance(d, dict) else None!r} "
                              f"is not supported (this perovdefect reads version "
                              f"{SCHEMA_VERSION}); re-run `perovdefect photons analyze`")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def summary(self) -> dict[str, Any]:
        on = self.levels[-1] if self.levels else {}
        g2 = self.g2 or {}
        return {"source": self.source, "photons": self.info.get("number_photons"),
                "n_levels": self.n_levels, "n_emitting_levels": self.n_emitting_levels,
                "levels_counts_per_bin": [round(lv["mean_counts"], 1) for lv in self.levels],
                "level_lifetimes_ns": [lv.get("decay", {}).get("tau_ns", [None])[0]
                                       for lv in self.levels],
                "brightest_level_counts_per_bin": on.get("mean_counts"),
                "g2_0": g2.get("g2_0"), "g2_0_err": g2.get("g2_0_err"),
                "n_emitters": g2.get("n_emitters"), "n_emitters_err": g2.get("n_emitters_err"),
                "excitation_N": self.excitation_N}


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    raise TypeError(f"not JSON serialisable: {type(obj)}")
