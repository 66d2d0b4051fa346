"""PhotonStats: the typed result document of a single-particle analysis (JSON, units in names).

Schema version 2 (perovdefect 0.2): levels, decay fits, segments, g2, dwell times, FLID and the
power series are typed `Part`s; every part also answers `part["key"]` and `part.get("key")` so
that code written against the version-1 dicts keeps working. Version-1 files (perovdefect 0.1,
a dataclass of dicts) are converted on load by `PhotonStats._upgrade`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pathlib import Path

from pydantic import Field, ValidationError, field_validator

from perovdefect.documents import Document, Part

SCHEMA_VERSION = 2


class _Items:
    """Dict-style read access to a Part's fields (`part["tau_ns"]`, `part.get("x", d)`)."""

    def _has(self, key: object) -> bool:
        return isinstance(key, str) and (key in type(self).model_fields  # type: ignore
                                         or isinstance(getattr(type(self), key, None), property))

    def __getitem__(self, key: str) -> Any:
        if self._has(key):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value; `default` when there is no such field or it is None (version-1
        dicts left out what was not computed, so `lv.get("decay", {})` keeps working)."""
        value = getattr(self, key) if self._has(key) else None
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return key in type(self).model_fields  # type: ignore[attr-defined]

    def keys(self) -> list[str]:
        return list(type(self).model_fields)  # type: ignore[attr-defined]


class PhotonPart(_Items, Part):
    """A Part of PhotonStats (typed, extra keys refused, dict-style read access)."""


class DecayFit(PhotonPart):
    """Poisson maximum-likelihood fit of 1 or 2 exponentials reconvolved with the IRF: lifetimes
    (ns) with curvature errors (ns), amplitude fractions and amplitudes (counts per bin at t = 0),
    average lifetimes (ns), IRF centre/width (ns), flat background (counts per bin), Poisson
    deviance, reduced deviance and reduced Pearson chi2, photons fitted, bin width (ns)."""

    n_exp: int
    tau_ns: list[float]
    fractions: list[float]
    tau_amplitude_avg_ns: float
    tau_intensity_avg_ns: float
    tau_err_ns: list[float | None] = []
    amplitudes_per_bin: list[float] = []
    irf_center_ns: float | None = None
    irf_sigma_ns: float | None = None
    background_per_bin: float = 0.0
    deviance: float | None = None
    reduced_deviance: float | None = None
    reduced_chi2: float | None = None
    n_photons: int = 0
    bin_width_ns: float = 0.0
    model: str = "gaussian-irf"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


class OverallDecay(PhotonPart):
    """Decay of all photons: mono-exponential, and bi-exponential when it could be fitted."""

    mono: DecayFit
    bi: DecayFit | None = None
    bi_error: str | None = None


class Histogram(PhotonPart):
    """A microtime histogram: bin starts (ns) and counts."""

    t_ns: list[float]
    counts: list[int]


class LevelG2(PhotonPart):
    """g2(0) of one level's photons (level-resolved antibunching) and the emitter number."""

    g2_0: float | None = None
    g2_0_err: float | None = None
    n_emitters: float | None = None
    n_emitters_err: float | None = None
    photons: int = 0


class IntensityLevel(PhotonPart):
    """One intensity level: mean counts per trace bin and count rate (counts/s, both
    detectors), fraction of the recording's time, photons, emitting or background, segments (or
    trace bins) that make it, the bin-method bounds (counts/bin), decay fit, signal fraction
    from that fit, and its level-resolved g2."""

    index: int
    mean_counts_per_bin: float
    rate_cps: float
    fraction: float
    photons: int
    kind: Literal["emitting", "background"]
    n_segments: int | None = None
    n_bins: int | None = None
    lo_counts_per_bin: float | None = None
    hi_counts_per_bin: float | None = None
    signal_fraction: float | None = None
    decay: DecayFit | None = None
    g2: LevelG2 | None = None

    @property
    def mean_counts(self) -> float:
        """Version-1 name of mean_counts_per_bin."""
        return self.mean_counts_per_bin

    @property
    def tau_ns(self) -> float | None:
        """Lifetime (ns) of the mono-exponential fit; None without one or for a background
        level (its photons are flat in microtime, a fitted lifetime would mean nothing)."""
        if self.kind == "background" or not self.decay or not self.decay.tau_ns:
            return None
        return self.decay.tau_ns[0]


class Segment(PhotonPart):
    """A stretch of constant rate between change points: start/stop (s), photons, rate
    (counts/s), its level and the mean photon delay after the IRF (ns; T3 only)."""

    start_s: float
    stop_s: float
    photons: int
    rate_cps: float
    level: int | None = None
    mean_delay_ns: float | None = None


class ChangePoints(PhotonPart):
    """How the recording was segmented (Watkins-Yang test at `confidence`)."""

    method: str = "watkins-yang"
    confidence: float
    min_photons: int
    n_change_points: int
    n_segments: int
    segments_stored: int
    bic_per_levels: dict[str, float] = {}


class G2(PhotonPart):
    """Pulsed g2, the one type of `analysis.g2` (its correlation, g2(0) and M) and of the
    PhotonStats: coincidence histogram (tau in ns; computed at `bin_width_ns`, stored at
    `stored_bin_ns`), peak areas by peak index ("0" the zero-delay peak) and how they were
    taken, g2(0) raw and corrected with 1-sigma errors, read two ways: the number of independent
    emitters M = 1/(1 - g2(0)) and, for one emitter, the biexciton-to-exciton quantum-yield
    ratio (Nair, Zhao and Bawendi, Nano Lett. 11, 1136 (2011)); `interpretation` says which one
    the levels support. rho: signal fractions of the two detectors; channels: the two detectors;
    photons_per_detector: the photons correlated on each; photons: which photons ("all" or a
    level)."""

    tau_ns: list[float] = []
    coincidences: list[int] = []
    stored_bin_ns: float | None = None
    bin_width_ns: float | None = None
    period_ns: float | None = None
    peak_areas: dict[str, float] = {}
    area_method: str = "windows"
    g2_0_raw: float | None = None
    g2_0: float | None = None
    g2_0_err: float | None = None
    n_emitters: float | None = None
    n_emitters_err: float | None = None
    bx_x_ratio: float | None = None
    bx_x_ratio_err: float | None = None
    bx_x_method: str | None = None
    interpretation: str | None = None
    rho: list[float] | None = None
    gate_ns: float = 0.0
    channels: list[int] = []
    photons_per_detector: list[int] = []
    photons: str = "all"


class EmitterCheck(PhotonPart):
    """Emitter number from the discrete levels (brightest level over the unit step of levels
    with the ON lifetime) beside M from the g2 of the brightest level; `agree` within errors."""

    from_levels: int | None = None
    levels_method: str = ""
    from_g2: float | None = None
    from_g2_err: float | None = None
    g2_photons: str = ""
    agree: bool | None = None
    statement: str = ""


class TruncatedPowerLaw(PhotonPart):
    """p(t) ~ t^-alpha exp(-t/cutoff) above the power law's t_min; likelihood ratio vs the pure
    power law and its p-value."""

    alpha: float
    alpha_err: float | None = None
    cutoff_s: float
    cutoff_err_s: float | None = None
    loglik_ratio_vs_power_law: float
    p_value: float
    preferred: str


class DwellFit(PhotonPart):
    """ON or OFF dwell times (s) and their maximum-likelihood power-law fit (t_min by the
    Kolmogorov-Smirnov distance, Clauset et al. 2009) and truncated power-law fit."""

    n: int
    mean_s: float | None = None
    alpha: float | None = None
    alpha_err: float | None = None
    t_min_s: float | None = None
    n_tail: int | None = None
    ks_distance: float | None = None
    truncated: TruncatedPowerLaw | None = None
    truncated_error: str | None = None
    error: str | None = None
    dwell_s: list[float] = []


class Flid(PhotonPart):
    """Fluorescence lifetime-intensity distribution: 2-D histogram of trace bins over counts
    per bin and mean delay (ns); segment points are in `PhotonStats.segments`."""

    counts_edges: list[float]
    delay_edges_ns: list[float]
    histogram: list[list[int]]


class Background(PhotonPart):
    """Background rate (both detectors together) and where it came from."""

    counts_per_bin: float | None = None
    cps: float | None = None
    source: str = "none"


class PowerLawFit(PhotonPart):
    """Slope of log(intensity) vs log(<N>): exponent, standard error, prefactor, regime."""

    exponent: float
    exponent_err: float | None = None
    prefactor: float
    n_points: int
    regime: str


class PowerSeries(PhotonPart):
    """Intensity, lifetime and g2 versus <N> over several recordings of one particle."""

    excitation_N: list[float]
    mean_counts_per_bin: list[float]
    brightest_level_counts_per_bin: list[float]
    brightest_level_tau_ns: list[float | None]
    mean_intensity_fit: PowerLawFit
    brightest_level_fit: PowerLawFit
    g2_0: list[float | None] = []
    g2_0_err: list[float | None] = []
    n_emitters: list[float | None] = []
    bx_x_ratio: list[float | None] = []
    bx_x_ratio_err: list[float | None] = []
    emitters_from_levels: list[int | None] = []

    def to_dict(self) -> dict[str, Any]:
        import json
        return json.loads(self.model_dump_json())


class LevelMerge(PhotonPart):
    """Two levels merged because the counts cannot tell them apart
    (`perovdefect.photons.analysis.merge`): their mean counts per bin, lifetimes (ns), the
    separation in Poisson sigma of one trace bin, and the criterion."""

    counts_per_bin: list[float]
    tau_ns: list[float | None]
    separation_sigma: float
    criterion: str


LevelMethod = Literal["change-points", "poisson-mixture", "thresholds"]


class AnalysisSettings(PhotonPart):
    """Every choice an analysis of a raw recording makes, stored in each PhotonStats and used
    again whenever the recording is re-analysed (`report --photons raw.ptu`, `photons
    population`), so that the same file gives the same numbers everywhere.

    Reading: timestamps_unit_s (s; Photon-HDF5 files without one), rep_rate_hz (Hz; T3 files
    that state no laser repetition rate), allow_truncated. Trace and levels: bin_width_s (s),
    level_method, thresholds_counts_per_bin (for "thresholds"), max_levels, change_points (run
    the Watkins-Yang segmentation), change_point_confidence, merge_levels (merge levels the
    counts cannot tell apart, `perovdefect.photons.analysis.merge`). Decays: decay_bin_ns (ns),
    biexponential. g2: g2_window_ns (ns half-window as asked; widened to 2.5 laser periods when
    shorter), g2_bin_ns (ns), gate_ns (ns), level_g2. background_cps_per_detector (counts/s;
    None = estimated). origin: where these settings came from (a sentence)."""

    bin_width_s: float = Field(0.01, gt=0)
    level_method: LevelMethod = "change-points"
    thresholds_counts_per_bin: list[float] | None = None
    max_levels: int = Field(6, ge=1)
    change_points: bool = True
    change_point_confidence: float = Field(0.95, ge=0.69, le=0.99)
    merge_levels: bool = True
    decay_bin_ns: float = Field(0.1, gt=0)
    biexponential: bool = True
    g2_window_ns: float = Field(500.0, gt=0)
    g2_bin_ns: float = Field(0.1, gt=0)
    gate_ns: float = Field(0.0, ge=0)
    level_g2: bool = True
    background_cps_per_detector: float | None = Field(None, ge=0)
    timestamps_unit_s: float | None = Field(None, gt=0)
    rep_rate_hz: float | None = Field(None, gt=0)
    allow_truncated: bool = False
    origin: str = "defaults"

    def analysis_choices(self) -> dict[str, Any]:
        """The settings without `origin` (two analyses with equal choices agree)."""
        return self.model_dump(exclude={"origin"})

    @classmethod
    def from_file(cls, path: str | Path) -> AnalysisSettings:
        """The settings in a JSON file: an AnalysisSettings, or a PhotonStats (its settings).
        ParseError naming the file otherwise."""
        import json

        from perovdefect.errors import ParseError
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"{path}: cannot read analysis settings ({exc})") from None
        if isinstance(data, dict) and "levels" in data and "source" in data:
            return PhotonStats.from_dict(data, str(path)).settings.model_copy(
                update={"origin": f"the analysis {path}"})
        try:
            return cls.model_validate(data).model_copy(update={"origin": f"{path}"})
        except ValidationError as exc:
            raise ParseError(f"{path}: not AnalysisSettings or PhotonStats JSON "
                             f"({exc.errors()[0]['loc']}: {exc.errors()[0]['msg']})") from None

    @classmethod
    def from_legacy(cls, d: dict[str, Any]) -> AnalysisSettings:
        """The hand-built settings dict of PhotonStats written before this part existed."""
        return cls(
            bin_width_s=d.get("bin_width_s", 0.01), decay_bin_ns=d.get("decay_bin_ns", 0.1),
            g2_window_ns=d.get("g2_window_ns", 500.0), g2_bin_ns=d.get("g2_bin_ns", 0.1),
            gate_ns=d.get("gate_ns", 0.0), level_method=d.get("levels", "change-points"),
            change_point_confidence=d.get("change_point_confidence", 0.95),
            background_cps_per_detector=d.get("background_cps_per_detector"),
            max_levels=d.get("max_levels", 6), merge_levels=False,
            thresholds_counts_per_bin=d.get("thresholds_counts_per_bin") or None,
            origin=("a version-1 PhotonStats" if d.get("upgraded_from_schema_version") == 1
                    else "a PhotonStats written before AnalysisSettings (levels not merged)"))


class PhotonStats(_Items, Document):
    """Everything a report needs about one recording: file info, trace (counts per bin of
    bin_width_s), intensity levels (change points + BIC, or the binned methods) with their decay
    fits and level-resolved g2, change-point segments, background, g2 read as M and as BX/X,
    the levels-vs-g2 emitter check, ON/OFF dwell-time fits, FLID, and optionally <N> and the
    power series."""

    SCHEMA_VERSION: ClassVar[int] = SCHEMA_VERSION
    REGENERATE_HINT: ClassVar[str] = ("re-run `perovdefect photons analyze` on the recording to "
                                      "write a current PhotonStats")

    schema_version: int = SCHEMA_VERSION
    source: str
    info: dict[str, Any] = {}
    bin_width_s: float
    trace_counts: list[int] = []
    level_method: str = "change-points"
    levels: list[IntensityLevel] = []
    n_levels: int
    n_emitting_levels: int
    background: Background = Background()
    background_counts_per_bin: float | None = None
    decay_overall: OverallDecay | None = None
    decay_histograms: dict[str, Histogram] = {}
    change_points: ChangePoints | None = None
    segments: list[Segment] = []
    g2: G2 | None = None
    emitters: EmitterCheck | None = None
    dwell_times: dict[str, DwellFit] | None = None
    dwell_rule: str | None = None
    flid: Flid | None = None
    excitation_N: float | None = None
    power_series: PowerSeries | None = None
    level_merges: list[LevelMerge] = []
    settings: AnalysisSettings = AnalysisSettings(origin="unknown (not stated)")

    @field_validator("settings", mode="before")
    @classmethod
    def _legacy_settings(cls, v: Any) -> Any:
        """A settings dict of the earlier layout (keys "levels", no "level_method") becomes
        an AnalysisSettings part."""
        if isinstance(v, dict) and "level_method" not in v:
            return (AnalysisSettings.from_legacy(v) if v else
                    AnalysisSettings(origin="unknown (not stated)"))
        return v

    # ------------------------------------------------------------------ what the report reads
    def brightest_level(self) -> IntensityLevel | None:
        return self.levels[-1] if self.levels else None

    def summary(self) -> dict[str, Any]:
        """One flat dict per recording (numbers in the units their names say)."""
        top = self.brightest_level()
        g2 = self.g2
        em = self.emitters
        dw = self.dwell_times or {}
        return {
            "source": self.source, "photons": self.info.get("number_photons"),
            "level_method": self.level_method,
            "n_levels": self.n_levels, "n_emitting_levels": self.n_emitting_levels,
            "levels_counts_per_bin": [round(lv.mean_counts_per_bin, 1) for lv in self.levels],
            "level_lifetimes_ns": [lv.tau_ns for lv in self.levels],
            "brightest_level_counts_per_bin": top.mean_counts_per_bin if top else None,
            "g2_0": g2.g2_0 if g2 else None, "g2_0_err": g2.g2_0_err if g2 else None,
            "n_emitters": g2.n_emitters if g2 else None,
            "n_emitters_err": g2.n_emitters_err if g2 else None,
            "bx_x_ratio": g2.bx_x_ratio if g2 else None,
            "bx_x_ratio_err": g2.bx_x_ratio_err if g2 else None,
            "g2_interpretation": g2.interpretation if g2 else None,
            "emitters_from_levels": em.from_levels if em else None,
            "levels_g2_agree": em.agree if em else None,
            "emitters_statement": em.statement if em else None,
            "on_dwell_alpha": dw["on"].alpha if "on" in dw else None,
            "on_dwell_alpha_err": dw["on"].alpha_err if "on" in dw else None,
            "off_dwell_alpha": dw["off"].alpha if "off" in dw else None,
            "off_dwell_alpha_err": dw["off"].alpha_err if "off" in dw else None,
            "n_change_points": self.change_points.n_change_points if self.change_points else None,
            "background_counts_per_bin": self.background.counts_per_bin,
            "background_source": self.background.source,
            "excitation_N": self.excitation_N}

    def level_rows(self) -> list[dict[str, Any]]:
        """One row per level: index, counts per bin, fraction of time, lifetime (ns), photons,
        kind."""
        return [{"level": lv.index, "counts_per_bin": lv.mean_counts_per_bin,
                 "fraction": lv.fraction, "tau_ns": lv.tau_ns, "photons": lv.photons,
                 "kind": lv.kind} for lv in self.levels]

    # ------------------------------------------------------------------ version 1 -> 2
    @classmethod
    def _upgrade(cls, data: dict[str, Any], source: str) -> dict[str, Any]:
        """perovdefect 0.1 wrote schema_version 1: the same content as plain dicts. Convert it;
        anything else is refused with the regenerate hint."""
        if data.get("schema_version") != 1:
            return super()._upgrade(data, source)
        from perovdefect.errors import ParseError
        try:
            return _upgrade_v1(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ParseError(f"{source}: a version-1 PhotonStats that cannot be converted "
                             f"({type(exc).__name__}: {exc}); {cls.REGENERATE_HINT}") from None


_DECAY_KEYS = set(DecayFit.model_fields)
_G2_KEYS = set(G2.model_fields)


def _decay_v1(d: dict | None) -> dict | None:
    return {k: v for k, v in d.items() if k in _DECAY_KEYS} if d else None


def _upgrade_v1(d: dict[str, Any]) -> dict[str, Any]:
    bw = float(d["bin_width_s"])
    n_em = int(d.get("n_emitting_levels", 0))
    old = d.get("levels") or []
    bg = d.get("background_counts_per_bin")
    levels = []
    for i, lv in enumerate(old):
        mc = float(lv["mean_counts"])
        levels.append({
            "index": i, "mean_counts_per_bin": mc, "rate_cps": mc / bw,
            "fraction": float(lv.get("fraction", 0.0)),
            "photons": int(lv.get("n_photons") or round(mc * lv.get("n_bins", 0))),
            "kind": "emitting" if i >= len(old) - n_em else "background",
            "n_bins": lv.get("n_bins"),
            "lo_counts_per_bin": lv.get("lo"), "hi_counts_per_bin": lv.get("hi"),
            "decay": _decay_v1(lv.get("decay"))})
    overall = d.get("decay_overall")
    if overall:
        overall = {"mono": _decay_v1(overall["mono"]), "bi": _decay_v1(overall.get("bi")),
                   "bi_error": overall.get("bi_error")}
    g2 = d.get("g2")
    if g2:
        g2 = {k: v for k, v in g2.items() if k in _G2_KEYS}
        if isinstance(g2.get("photons"), list):  # analysis.g2's photons per detector
            g2["photons_per_detector"] = g2.pop("photons")
        g2["peak_areas"] = {str(k): v for k, v in (g2.get("peak_areas") or {}).items()}
        g2["interpretation"] = "M = 1/(1 - g2(0)) (version-1 document)"
    segs = [{"start_s": s["start_s"], "stop_s": s["end_s"], "photons": s["photons"],
             "rate_cps": s["rate_cps"]} for s in d.get("segments") or []]
    ps = d.get("power_series")
    if ps:
        ps = {k: v for k, v in ps.items() if k in PowerSeries.model_fields}
    settings = dict(d.get("settings") or {})
    settings["upgraded_from_schema_version"] = 1
    return {
        "source": d["source"], "info": d.get("info") or {}, "bin_width_s": bw,
        "trace_counts": d.get("trace_counts") or [],
        "level_method": settings.get("levels", "poisson-mixture"), "levels": levels,
        "n_levels": int(d.get("n_levels", len(levels))), "n_emitting_levels": n_em,
        "background": {"counts_per_bin": bg, "cps": None if bg is None else bg / bw,
                       "source": "given (version-1 document)" if bg is not None else "none"},
        "background_counts_per_bin": bg, "decay_overall": overall,
        "decay_histograms": d.get("decay_histograms") or {}, "segments": segs, "g2": g2,
        "flid": d.get("flid"), "excitation_N": d.get("excitation_N"), "power_series": ps,
        "settings": settings}
