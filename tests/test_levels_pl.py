"""Issue 3: in-gap state search, alignment and the PL comparison (no DFT needed here)."""

from __future__ import annotations

import numpy as np
import pytest

from perovdefect.errors import AnalysisError
from perovdefect.levels import compare_with_pl, find_in_gap_states, fit_pl_spectrum, read_spectrum
from perovdefect.parsers import ElectronicStructure
from perovdefect.units import ev_to_nm, fwhm_nm_to_meV, nm_to_ev


def doc(eigs, occs, vacuum=0.0, **kw) -> ElectronicStructure:
    return ElectronicStructure(code="test", functional="HSE06", exact_exchange_fraction=0.25,
                               screening_inv_A=0.2, soc=False, converged=True,
                               total_energy_eV=0.0, eigenvalues_eV=[[eigs]],
                               occupations=[[occs]], kpoint_weights=[1.0], fermi_level_eV=None,
                               n_electrons=None, charge=0, nspins=1, vacuum_level_eV=vacuum,
                               is_cluster=True, **kw)


def test_units_from_scipy_constants():
    assert ev_to_nm(2.4) == pytest.approx(516.6, abs=0.1)
    assert nm_to_ev(518) == pytest.approx(2.3936, abs=1e-3)
    assert fwhm_nm_to_meV(518, 14) == pytest.approx(64.7, abs=0.5)


def test_mid_gap_state_with_vacuum_alignment():
    host = doc([-8.0, -7.0, -6.0, -2.1, -1.5], [1, 1, 1, 0, 0], vacuum=0.0)  # gap 3.9 eV
    # defect calculation offset by +0.3 eV (vacuum at 0.3); one occupied state 2.4 eV above VBM
    defect = doc([-7.7, -6.7, -5.7 + 0.0, -3.3, -1.8], [1, 1, 1, 1, 0], vacuum=0.3)
    lv = find_in_gap_states(host, defect)
    assert lv.host_gap_eV == pytest.approx(3.9)
    assert lv.alignment_shift_eV == pytest.approx(-0.3)
    (state,) = [s for s in lv.in_gap_states if s.occupation > 0.5]
    assert state.energy_above_vbm_eV == pytest.approx(2.4, abs=1e-6)
    assert state.transition_eV == pytest.approx(2.4, abs=1e-6)
    # no localisation data: classified by depth alone, and it says so
    assert state.kind == "defect" and state.basis == "energy only"
    cmp = compare_with_pl(lv.transitions_eV, pl_nm=516.6)
    assert abs(cmp.closest.deviation_eV) < 0.01
    assert lv.verdict.pl_transition_eV == pytest.approx(2.4, abs=1e-6)


def test_no_gap_host_is_an_error():
    host = doc([-1.0, -0.9], [1, 0.0])
    host.gap_eV = 0.0
    with pytest.raises(AnalysisError, match="no gap"):
        find_in_gap_states(host, host)


@pytest.mark.parametrize("model", ["gaussian", "voigt"])
def test_pl_fit_recovers_peak(tmp_path, model):
    wl = np.linspace(470, 570, 401)
    y = 1000 * np.exp(-0.5 * ((wl - 517.0) / (14.0 / 2.3548)) ** 2) + 20
    y = np.random.default_rng(1).poisson(y)
    f = tmp_path / "pl.csv"
    f.write_text("wavelength_nm,intensity\n" + "\n".join(f"{a},{b}" for a, b in zip(wl, y)))
    peak = fit_pl_spectrum(*read_spectrum(f), model=model, source=str(f))
    assert peak.center_nm == pytest.approx(517.0, abs=0.3)
    assert peak.fwhm_nm == pytest.approx(14.0, rel=0.08)
    assert peak.center_eV == pytest.approx(nm_to_ev(517.0), abs=2e-3)


def test_bad_spectra(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("wavelength,intensity\n")
    with pytest.raises(AnalysisError, match="empty"):
        read_spectrum(empty)
    with pytest.raises(AnalysisError, match="no such"):
        read_spectrum(tmp_path / "nope.csv")
    flat = np.ones(20)
    with pytest.raises(AnalysisError, match="flat"):
        fit_pl_spectrum(np.linspace(500, 520, 20), flat)


def band(spin, band_, e, occ, ipr, character):
    return {"spin": spin, "k": 0, "band": band_, "energy_eV": e, "occupation": occ, "ipr": ipr,
            "character": character}


def test_defect_and_perturbed_host_states_told_apart():
    """Host: Br-p VBM (IPR 0.15), Pb-p CBM. Defect: a Br-like state 0.1 eV above the VBM with
    the host's localisation (perturbed host), a Pb-like state deep in the gap twice as
    localised as the CBM (defect), and a Br-like state 0.6 eV up but no more localised than the
    VBM (a host state shifted by charge: not a defect state)."""
    host_loc = [band(0, 2, -6.0, 1, 0.15, {"Br": 0.9, "Pb": 0.1}),
                band(0, 3, -2.1, 0, 0.30, {"Pb": 0.6, "Br": 0.4})]
    host = doc([-8.0, -7.0, -6.0, -2.1, -1.5], [1, 1, 1, 0, 0], band_localization=host_loc)
    d_loc = [band(0, 3, -5.9, 1, 0.16, {"Br": 0.88, "Pb": 0.12}),
             band(0, 4, -5.4, 1, 0.17, {"Br": 0.9, "Cs": 0.1}),
             band(0, 5, -3.6, 1, 0.70, {"Pb": 0.95, "Br": 0.05})]
    defect = doc([-8.0, -7.0, -6.5, -5.9, -5.4, -3.6, -1.6], [1, 1, 1, 1, 1, 1, 0],
                 band_localization=d_loc)
    lv = find_in_gap_states(host, defect, alignment="none")
    kinds = {round(s.energy_above_vbm_eV, 2): s.kind for s in lv.in_gap_states}
    assert kinds == {0.1: "perturbed_host", 0.6: "perturbed_host", 2.4: "defect"}
    deep = [s for s in lv.in_gap_states if s.kind == "defect"][0]
    assert deep.localization_ratio == pytest.approx(0.70 / 0.30, abs=1e-3)
    assert deep.nearest_edge == "CBM" and deep.basis == "localisation"
    # only the defect state is compared with the PL
    assert lv.transitions_eV == [pytest.approx(2.4)]
    assert lv.verdict.occupied_defect_states == 1 and lv.verdict.perturbed_host_states == 2


def test_mixed_codes_refused_unless_allowed():
    host = doc([-8.0, -6.0, -2.1], [1, 1, 0])
    other = doc([-8.0, -6.0, -2.1], [1, 1, 0]).model_copy(update={"code": "other",
                                                                  "functional": "LDA"})
    with pytest.raises(AnalysisError, match="codes differ.*`allow_mixed`"):
        find_in_gap_states(host, other)
    lv = find_in_gap_states(host, other, allow_mixed=True)
    assert lv.mixed_levels_of_theory and any("`allow_mixed`" in w for w in lv.warnings)


def test_potential_alignment_for_periodic_cells():
    """A defect cell whose potential is the host's shifted by -0.25 eV far from the defect (a
    charged cell) and perturbed near it: the shift is +0.25 eV, not the deepest-level one."""
    x = np.arange(40) / 40
    host_v = np.cos(2 * np.pi * 4 * x)
    bump = -1.5 * np.exp(-((x - 0.5) / 0.05) ** 2)
    cell = (np.eye(3) * 12.0).tolist()
    pot = lambda v: {"averages_eV": [list(v)] * 3, "cell_A": cell}  # noqa: E731
    host = doc([-20.0, -6.0, -2.1], [1, 1, 0], planar_potential=pot(host_v))
    host = host.model_copy(update={"is_cluster": False})
    defect = doc([-19.0, -5.5, -3.0, -1.8], [1, 1, 1, 0],
                 planar_potential=pot(host_v - 0.25 + bump)).model_copy(
        update={"is_cluster": False})
    lv = find_in_gap_states(host, defect)
    assert lv.alignment.startswith("electrostatic potential")
    assert lv.alignment_shift_eV == pytest.approx(0.25, abs=0.01)
    deep = find_in_gap_states(host, defect, alignment="deep_level")
    assert deep.alignment_shift_eV == pytest.approx(-1.0)  # what the fallback would have said
    assert not lv.alignment_fallback


def test_unbound_charged_cluster_is_flagged():
    host = doc([-8.0, -6.0, -2.1], [1, 1, 0], vacuum=0.0)
    anion = doc([-7.0, -5.0, 0.4, 1.5], [1, 1, 1, 0], vacuum=0.0).model_copy(
        update={"charge": -1})
    lv = find_in_gap_states(host, anion)
    assert lv.unbound and any("unbound" in w for w in lv.warnings)
