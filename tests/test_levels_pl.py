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
    (state,) = [s for s in lv.in_gap_states if s["occupation"] > 0.5]
    assert state["energy_above_vbm_eV"] == pytest.approx(2.4, abs=1e-6)
    assert state["transition_eV"] == pytest.approx(2.4, abs=1e-6)
    cmp = compare_with_pl(lv.transitions_eV, pl_nm=516.6)
    assert abs(cmp["closest"]["deviation_eV"]) < 0.01


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
