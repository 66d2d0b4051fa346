"""Issue 22, parts 2 and 3: one typed AnalysisSettings part in every PhotonStats, used again
whenever a raw file is re-analysed (`report --photons raw.ptu`); levels the counts cannot tell
apart merged by the stated criterion of perovdefect.photons.analysis.merge."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.errors import AnalysisError
from perovdefect.photons.analysis import merge
from perovdefect.photons.analysis.pipeline import analyze_stream, settings_from_options
from perovdefect.photons.io.ptu_write import write_ptu
from perovdefect.photons.simulate import SimulationParams, simulate
from perovdefect.photons.stats import AnalysisSettings, PhotonStats

#: Non-default choices: a report that fell back on the defaults would give other numbers.
ANALYZE_OPTIONS = ["--bin-ms", "5", "--gate-ns", "0.5", "--confidence", "0.9",
                   "--background-cps", "700", "--g2-window-ns", "800"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A raw PTU and its finished `photons analyze` with non-default settings."""
    d = tmp_path_factory.mktemp("settings")
    raw = write_ptu(d / "raw.ptu", simulate(SimulationParams(duration_s=4, seed=12)))
    r = CliRunner().invoke(main, ["photons", "analyze", str(raw), "-o", str(d / "an"),
                                  "--excitation-N", "0.5", "--json", *ANALYZE_OPTIONS])
    assert r.exit_code == 0, r.output
    return raw, PhotonStats.from_json(d / "an" / "raw.photonstats.json")


def _numbers(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "source"}


def test_settings_are_typed_and_stored(finished):
    _, st = finished
    s = st.settings
    assert isinstance(s, AnalysisSettings)
    assert (s.bin_width_s, s.gate_ns, s.change_point_confidence,
            s.background_cps_per_detector, s.g2_window_ns) == (0.005, 0.5, 0.9, 700.0, 800.0)
    assert s.origin == "perovdefect photons analyze options"
    assert st.bin_width_s == 0.005 and st.g2.gate_ns == 0.5


def test_report_of_the_raw_file_with_the_analysis_settings_gives_the_same_numbers(
        finished, tmp_path):
    raw, st = finished
    settings = tmp_path / "settings.json"
    settings.write_text(st.settings.model_dump_json())
    r = CliRunner().invoke(main, ["report", "--photons", str(raw), "--excitation-N", "0.5",
                                  "--photon-settings", str(settings), "-o", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    particle = json.loads((tmp_path / "r" / "report.json").read_text())["particles"][0]
    assert _numbers(particle) == _numbers(json.loads(json.dumps(st.summary())))
    assert any("settings.json" in n for n in
               json.loads((tmp_path / "r" / "report.json").read_text())["notes"])


def test_report_finds_the_existing_analysis_beside_the_raw_file(finished, tmp_path):
    """No --photon-settings: the settings of STEM.photonstats.json beside the raw file; the
    defaults (10 ms bins, no gate) would give other numbers, so the test can fail."""
    raw, st = finished
    shutil.copy(raw, tmp_path / "raw.ptu")
    st.to_json(tmp_path / "raw.photonstats.json")
    from perovdefect.report import load_photon_stats
    notes: list[str] = []
    again = load_photon_stats([tmp_path / "raw.ptu"], [0.5], notes=notes)[0]
    assert again.settings.analysis_choices() == st.settings.analysis_choices()
    assert _numbers(again.summary()) == _numbers(st.summary())
    assert "existing analysis" in notes[0] and "existing analysis" in again.settings.origin
    (tmp_path / "raw.photonstats.json").unlink()
    default = load_photon_stats([tmp_path / "raw.ptu"], [0.5], notes=notes)[0]
    assert default.settings.origin.startswith("perovdefect's defaults")
    assert default.bin_width_s == 0.01 and default.summary() != again.summary()


def test_settings_and_options_are_not_mixed_and_bad_settings_are_refused():
    s = simulate(SimulationParams(duration_s=0.5, seed=1))
    with pytest.raises(AnalysisError, match="not both"):
        analyze_stream(s, AnalysisSettings(), bin_width_s=0.02)
    with pytest.raises(AnalysisError, match="bin_width_s"):
        settings_from_options(bin_width_s=-1.0)
    with pytest.raises(AnalysisError, match="thresholds"):
        analyze_stream(s, AnalysisSettings(level_method="thresholds"))


def test_legacy_settings_dict_is_read(finished):
    _, st = finished
    d = st.to_dict()
    d["settings"] = {"bin_width_s": 0.005, "decay_bin_ns": 0.1, "g2_window_ns": 800.0,
                     "g2_bin_ns": 0.1, "gate_ns": 0.5, "levels": "change-points",
                     "change_point_confidence": 0.9, "background_cps_per_detector": 700.0,
                     "max_levels": 6}
    back = PhotonStats.from_dict(d)
    assert back.settings.gate_ns == 0.5 and back.settings.merge_levels is False
    assert "before AnalysisSettings" in back.settings.origin


# ----------------------------------------------------------------------------- part 3

def test_demo_gray_level_is_not_split():
    """The demo's <N> = 0.5 particle (perovdefect.demo, 10 s, seed 101) used to show its GRAY
    state as two levels of 73 and 80 counts/bin, both 1.0 ns. Now one GRAY level (1 ns) between
    the background and ON (9 ns), and the merge is stated."""
    from perovdefect.demo import demo_photon_params
    s = simulate(demo_photon_params(0.5, 10.0, seed=101))
    split = analyze_stream(s, background_cps=750.0, excitation_N=0.5, merge_levels=False)
    gray = [lv for lv in split.levels if 50 < lv.mean_counts_per_bin < 150]
    assert len(gray) == 2  # the split the criterion removes
    st = analyze_stream(s, background_cps=750.0, excitation_N=0.5)
    assert [round(lv.tau_ns) if lv.tau_ns else None for lv in st.levels] == [None, 1, 9]
    assert 65 < st.levels[1].mean_counts_per_bin < 85
    assert st.levels[1].photons == sum(lv.photons for lv in gray)
    (m,) = st.level_merges
    assert m.separation_sigma < merge.MERGE_SIGMA and m.criterion == merge.CRITERION
    assert st.emitters.from_levels == 1 and st.emitters.agree


def test_criterion_keeps_distinguishable_levels():
    """Same lifetime but 3 sigma apart, or overlapping counts but other lifetimes: kept."""
    v = merge.LevelView
    assert not merge.indistinguishable(v(70.0, True, 1.0, 0.02), v(96.0, True, 1.0, 0.02))
    assert not merge.indistinguishable(v(70.0, True, 1.0, 0.02), v(75.0, True, 9.0, 0.1))
    assert not merge.indistinguishable(v(70.0, False, 1.0, 0.02), v(75.0, True, 1.0, 0.02))
    assert not merge.indistinguishable(v(70.0, True, None, None), v(75.0, True, None, None))
    assert merge.indistinguishable(v(73.0, True, 1.03, 0.02), v(80.0, True, 1.0, 0.02))
    levels = [v(15, False, None, None), v(73, True, 1.0, .02), v(80, True, 1.0, .02),
              v(90, True, 1.0, .02), v(220, True, 9.0, .05)]
    assert merge.closest_indistinguishable_pair(levels) == 1


def test_no_kept_level_is_merged_on_blinking_ladders():
    """M blinking emitters: M + 1 levels ~330 counts/bin apart stay M + 1 levels."""
    from perovdefect.photons.simulate import EmitterState
    blink = (EmitterState("ON", 0.0105, 9.0, 0.2), EmitterState("OFF", 0.0, 1.0, 0.2))
    for M in (2, 3):
        st = analyze_stream(simulate(SimulationParams(duration_s=6, n_emitters=M, states=blink,
                                                      seed=30 + M)),
                            biexponential=False, level_g2=False)
        assert st.n_levels == M + 1 and not st.level_merges
        assert np.all(np.diff([lv.mean_counts_per_bin for lv in st.levels]) > 250)
