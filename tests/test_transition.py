"""Issue 18, item 4: radiative rates (`perovdefect transition`, perovdefect.optics.radiative).

- The rate formula against independent closed forms (hydrogen 2p -> 1s).
- Real GPAW calculations of a free Na atom (spin-polarised, set explicitly): the 3s -> 3p
  resonance line against its measured lifetime, symmetry-forbidden pairs, the DeltaSCF excited
  state's emission, periodic cells (translation invariance of the localised-state dipole).
- Errors: a band outside the calculation, a spin the run lacks, a run without wave functions
  (one line each through the CLI), and VASP's WAVEDER path. VASP is licensed and cannot run
  here: its test pairs a real vasprun.xml (GaN V_N, shared data) with a WAVEDER written by the
  test in VASP's binary record layout, the stand-in for what VASP would have written.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from scipy import constants as sc

from perovdefect.calcs.gpaw import gpaw_available
from perovdefect.optics.radiative import (LOCAL_FIELD_MODELS, local_field_factor,
                                          oscillator_strength, spontaneous_emission_rate_per_s)
from tests.conftest import run_cli

#: Na 3p lifetime (ns), measured: 16.254(22) ns (3p 2P3/2) and 16.299(21) ns (3p 2P1/2), Volz,
#: Majerus, Liebel, Schmitt and Schmoranzer, Phys. Rev. Lett. 76, 2862 (1996); NIST ASD /
#: VALD3 transition probabilities 6.16e7 and 6.14e7 1/s (16.23, 16.29 ns). The calculation
#: has no spin-orbit coupling: one 3p level, compared with the fine-structure mean.
NA_3P_LIFETIME_NS = 16.27
#: Na D-line oscillator strength (3s -> 3p, summed over the doublet: 0.641 + 0.320, NIST ASD)
NA_D_OSCILLATOR_STRENGTH = 0.961
#: the measured D lines (nm, NIST ASD: D2 588.995 nm, D1 589.592 nm), weighted 2:1
NA_D_EV = (2 * sc.h * sc.c / (588.995e-9 * sc.e) + sc.h * sc.c / (589.592e-9 * sc.e)) / 3

needs_gpaw = pytest.mark.skipif(not gpaw_available(), reason="GPAW not installed "
                                "(pip install 'perovdefect[gpaw]')")
LCAO = {"mode": "lcao", "basis": "dzp", "grid_spacing_A": 0.25}


# -- (c) the formula against closed forms --------------------------------------------------------
def test_hydrogen_2p_lifetime_closed_form():
    """H 2p -> 1s: <1s|z|2p0> = 128 sqrt(2)/243 a0, E = 3/8 Hartree. The rate must equal the
    closed form A = (2/3)^8 alpha^5 m_e c^2 / hbar (6.2649e8 1/s, tau = 1.596 ns)."""
    a0_A = sc.physical_constants["Bohr radius"][0] / sc.angstrom
    hartree_eV = sc.physical_constants["Hartree energy in eV"][0]
    d_A = 128 * math.sqrt(2) / 243 * a0_A
    energy = 3 / 8 * hartree_eV
    rate = spontaneous_emission_rate_per_s(energy, d_A ** 2)
    closed = (2 / 3) ** 8 * sc.alpha ** 5 * sc.m_e * sc.c ** 2 / sc.hbar
    assert rate == pytest.approx(closed, rel=1e-9)
    assert 1e9 / rate == pytest.approx(1.596, abs=0.001)
    # absorption 1s -> 2p summed over the three 2p sublevels (line strength 3 d^2, g_lower 1):
    # f = (2/3) (3/8) 3 (128 sqrt(2)/243)^2 = 2^13 / 3^9 = 0.41620 (the textbook value)
    assert oscillator_strength(energy, 3 * d_A ** 2) == pytest.approx(2 ** 13 / 3 ** 9,
                                                                      rel=1e-9)
    # per upper sublevel with all three counted: the same rate as the single pair
    assert spontaneous_emission_rate_per_s(energy, 3 * d_A ** 2, upper_degeneracy=3) == \
        pytest.approx(rate)


def test_medium_factors():
    """The rate grows as n chi(n); the local-field models at n = 1 are all 1."""
    assert set(LOCAL_FIELD_MODELS) == {"none", "virtual-cavity", "empty-cavity"}
    from perovdefect.cli.optics import LOCAL_FIELDS
    assert set(LOCAL_FIELDS) == set(LOCAL_FIELD_MODELS) and LOCAL_FIELDS[0] == "none"
    for model in LOCAL_FIELD_MODELS:
        assert local_field_factor(model, 1.0) == pytest.approx(1.0)
    assert local_field_factor("virtual-cavity", 2.0) == pytest.approx(4.0)
    assert local_field_factor("empty-cavity", 2.0) == pytest.approx((12 / 9) ** 2)
    base = spontaneous_emission_rate_per_s(2.4, 1.0)
    assert spontaneous_emission_rate_per_s(2.4, 1.0, 2.0, 4.0) == pytest.approx(8 * base)


# -- real GPAW runs --------------------------------------------------------------------------------
def _na_atom(box_A: float, periodic: bool = False, at_corner: bool = False):
    from ase import Atoms

    from perovdefect.structures.record import StructureRecord
    pos = 0.0 if at_corner else box_A / 2
    atoms = Atoms("Na", positions=[(pos,) * 3], cell=[box_A] * 3, pbc=periodic)
    # one unpaired 3s electron: spin-polarised, said explicitly
    return StructureRecord(atoms, {"name": "Na atom", "charge": 0, "spin_multiplicity": 2})


def _run(record, protocol, path, **settings):
    from perovdefect.calcs.gpaw import run_gpaw
    run_gpaw(record, protocol, path, **settings)
    return path


@pytest.fixture(scope="module")
def na_lcao(tmp_path_factory):
    from perovdefect.calcs.protocol import Protocol
    return _run(_na_atom(10.0), Protocol(spin_polarized=True),
                tmp_path_factory.mktemp("na") / "lcao", **LCAO)


@pytest.fixture(scope="module")
def na_pw(tmp_path_factory):
    from perovdefect.calcs.protocol import Protocol
    return _run(_na_atom(13.0), Protocol(spin_polarized=True, cutoff_eV=250.0),
                tmp_path_factory.mktemp("na") / "pw", mode="pw", nbands=8)


@pytest.fixture(scope="module")
def h2_without_wavefunctions(tmp_path_factory):
    """A closed-shell molecule run spin-unpolarised, its wave functions not kept."""
    from ase import Atoms

    from perovdefect.calcs.protocol import Protocol
    from perovdefect.structures.record import StructureRecord
    atoms = Atoms("H2", positions=[(3, 3, 2.63), (3, 3, 3.37)], cell=[6, 6, 6])
    rec = StructureRecord(atoms, {"name": "H2", "charge": 0, "spin_multiplicity": 1})
    return _run(rec, Protocol(), tmp_path_factory.mktemp("h2") / "static",
                keep_wavefunctions=False, **LCAO)


def _transition(run_dir, *args):
    """The OpticalTransition document `perovdefect transition RUN_DIR ARGS --json` prints."""
    r = run_cli("transition", str(run_dir), *args, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _library(run_dir, **kwargs):
    """The same through the library call the luminescence chain uses (no CLI start-up)."""
    from perovdefect.optics.radiative import radiative_transition
    return radiative_transition(run_dir, **kwargs).to_dict()


@pytest.mark.slow
@needs_gpaw
def test_na_resonance_line_lifetime(na_pw, tmp_path):
    """Na 3s -> 3p (plane waves, 250 eV, 13 A box): the radiative lifetime from the Kohn-Sham
    energy and the computed dipole within 25 % of the measured 16.27 ns (measured here:
    E_KS 2.13 eV against the measured 2.104 eV, |d| 1.33 e A, tau 15.3 ns, f 0.99)."""
    out = tmp_path / "na.json"
    doc = _transition(na_pw, "--initial", "homo", "--final", "lumo", "-o", str(out))
    # --json prints exactly the document -o wrote
    assert json.loads(out.read_text()) == doc
    assert doc["energy_source"] == "Kohn-Sham eigenvalue difference"
    assert doc["direction"] == "absorption" and doc["spin"] == "up"
    assert len(doc["degenerate_final_bands"]) == 3  # the three 3p bands
    assert doc["energy_eV"] == pytest.approx(NA_D_EV, rel=0.05)
    assert doc["line_strength_e2A2"] == pytest.approx(3 * doc["dipole_eA"] ** 2, rel=1e-3)
    assert doc["radiative_lifetime_ns"] == pytest.approx(NA_3P_LIFETIME_NS, rel=0.25)
    assert doc["oscillator_strength"] == pytest.approx(NA_D_OSCILLATOR_STRENGTH, rel=0.25)
    assert doc["refractive_index"] == 1.0 and doc["local_field_factor"] == 1.0
    assert "PAW" in doc["method"] and doc["warnings"] == []
    # with the measured line energy instead of the Kohn-Sham one: the dipole alone decides
    measured = _transition(na_pw, "--energy-eV", f"{NA_D_EV:.5f}")
    assert measured["energy_source"].startswith("given")
    assert measured["radiative_lifetime_ns"] == pytest.approx(NA_3P_LIFETIME_NS, rel=0.25)
    # an existing output file is not overwritten without --force
    again = run_cli("transition", str(na_pw), "-o", str(out))
    assert again.returncode != 0 and "--force" in again.stderr


@pytest.mark.slow
@needs_gpaw
def test_na_s_to_s_is_forbidden(na_pw):
    """3s -> 4s (the next non-degenerate level above 3p): parity-forbidden, dipole ~0."""
    doc = _library(na_pw, initial="homo", final="lumo+3")
    assert doc["degenerate_final_bands"] == [doc["final_band"]]  # an s level, not p or d
    assert doc["dipole_eA"] < 1e-3  # against 1.33 e A for 3s -> 3p
    assert doc["radiative_lifetime_ns"] is None or doc["radiative_lifetime_ns"] > 1e5


@pytest.mark.slow
@needs_gpaw
def test_na_lcao_line_and_forbidden_p_to_p(na_lcao):
    """LCAO dzp (the project's default mode; gs.gpw is what the luminescence chain keeps):
    the 3s -> 3p lifetime within 25 % (19.1 ns here: dzp's single 3p polarisation function
    makes |d| 10 % small; the plane-wave run above gets 15.3 ns), and 2p -> 3p
    (parity-forbidden) ~0."""
    doc = _transition(na_lcao)
    assert doc["code"] == "gpaw" and doc["radiative_lifetime_ns"] == pytest.approx(
        NA_3P_LIFETIME_NS, rel=0.25)
    assert (na_lcao / "gs.gpw").stat().st_size < 20e6  # ~6 MB for a 10 A box
    p_to_p = _library(na_lcao, initial="homo-1", final="lumo")
    assert len(p_to_p["degenerate_initial_bands"]) == 3  # the 2p semicore level
    assert p_to_p["dipole_eA"] < 1e-3 and p_to_p["line_strength_e2A2"] < 1e-5


@pytest.mark.slow
@needs_gpaw
def test_na_excited_state_emission(na_lcao, tmp_path):
    """A DeltaSCF (MOM) static step keeps its wave functions too: in the excited state the
    promoted electron is the homo and the 3s hole the lumo, so homo -> lumo is the emission,
    with the ground state's lifetime within 3 %."""
    from perovdefect.calcs.protocol import Protocol
    excited = _run(_na_atom(10.0), Protocol(spin_polarized=True, excitation="up:homo->lumo"),
                   tmp_path / "excited", **LCAO)
    doc = _library(excited)
    assert doc["direction"] == "emission"
    assert doc["initial_occupation"] > 0.5 and doc["final_occupation"] < 0.5
    ground = _library(na_lcao)
    assert doc["radiative_lifetime_ns"] == pytest.approx(ground["radiative_lifetime_ns"],
                                                         rel=0.03)


@pytest.mark.slow
@needs_gpaw
def test_periodic_cell_dipole_is_translation_invariant(tmp_path):
    """Periodic cells: the localised-state dipole (r from the states' centre, minimum image).
    The same atom at the cell centre and at a cell corner (a translation by half a cell, a
    whole number of grid spacings) must give the same line strength; a dipole measured from
    the cell origin would not (the corner atom's states straddle every face)."""
    from perovdefect.calcs.protocol import Protocol
    p = Protocol(spin_polarized=True, kpoints=(1, 1, 1))
    docs = [_library(_run(_na_atom(9.0, True, corner), p, tmp_path / str(corner), **LCAO))
            for corner in (False, True)]
    centre, corner = docs
    assert "localised states" in centre["method"] and centre["boundary_weight"] is not None
    assert corner["line_strength_e2A2"] == pytest.approx(centre["line_strength_e2A2"],
                                                         rel=1e-6)
    assert centre["line_strength_e2A2"] > 1.0
    # no refractive index given for a crystal: n = 1, said in a warning; the diffuse 3p in a
    # 9 A cell fails the localisation criterion, also said
    warnings = " ".join(centre["warnings"])
    assert "refractive index" in warnings and "not localised" in warnings
    with_n = _library(tmp_path / "False", refractive_index=2.0, refractive_index_source="test",
                      local_field="virtual-cavity")
    assert with_n["rate_per_s"] == pytest.approx(8 * centre["rate_per_s"], rel=1e-9)
    assert with_n["refractive_index_source"] == "test"


# -- (d) errors: one line each ---------------------------------------------------------------------
def _one_line_error(r, *words):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.slow
@needs_gpaw
def test_band_outside_the_calculation(na_lcao):
    _one_line_error(run_cli("transition", str(na_lcao), "--final", "lumo+500"),
                    "lumo+500", "outside the calculation")
    _one_line_error(run_cli("transition", str(na_lcao), "--final", "lumo*2"), "not a band")


@pytest.mark.slow
@needs_gpaw
def test_spin_the_run_lacks_and_no_wavefunctions(h2_without_wavefunctions):
    run_dir = h2_without_wavefunctions
    _one_line_error(run_cli("transition", str(run_dir), "--spin", "down"),
                    "spin down", "spin-unpolarised")
    assert not (run_dir / "gs.gpw").exists()
    _one_line_error(run_cli("transition", str(run_dir)), str(run_dir), "no wave functions")


# -- VASP: WAVEDER through pymatgen (stand-in file, see the module docstring) ----------------------
def _write_waveder(path, cder: np.ndarray) -> None:
    """VASP's WAVEDER layout (as pymatgen's Waveder.from_binary reads it): Fortran sequential
    records (int32 length, data, int32 length) of (NBANDS, NBANDS_CDER, NKPTS, ISPIN), two
    float64 records, then CDER(NBANDS, NBANDS_CDER, NKPTS, ISPIN, 3) in Fortran order."""
    def record(data: bytes) -> bytes:
        n = np.int32(len(data)).tobytes()
        return n + data + n
    nb, nb2, nk, ns, _ = cder.shape
    path.write_bytes(record(np.array([nb, nb2, nk, ns], dtype=np.int32).tobytes())
                     + record(np.zeros(1).tobytes()) + record(np.zeros(9).tobytes())
                     + record(cder.astype(np.complex64).T.tobytes()))


def test_vasp_waveder_dipole_and_missing_file(shared_data, tmp_path):
    src = shared_data / "vasp" / "pmgad_v_N_GaN_q+1" / "vasprun.xml.gz"
    run_dir = tmp_path / "vasp_run"
    run_dir.mkdir()
    shutil.copy(src, run_dir / "vasprun.xml.gz")
    # no WAVEDER: one clear error naming the file and the INCAR tag that writes it
    _one_line_error(run_cli("transition", str(run_dir)), "WAVEDER", "LOPTICS")
    # 180 bands, matrix elements written for the first 141 (as without LVEL): homo 140,
    # lumo 141, so <140|r|141> comes from the Hermitian partner CDER[141, 140]
    rng = np.random.default_rng(18)
    cder = (rng.normal(size=(180, 141, 1, 2, 3)) + 1j * rng.normal(size=(180, 141, 1, 2, 3))
            ) * 0.01
    d = np.array([0.3 + 0.1j, -0.2j, 0.5])
    cder[141, 140, 0, 0] = d
    _write_waveder(run_dir / "WAVEDER", cder)
    doc = _transition(run_dir, "--initial", "homo", "--final", "lumo")
    assert doc["code"] == "vasp" and "WAVEDER" in doc["method"]
    assert (doc["initial_band"], doc["final_band"]) == (140, 141)
    assert doc["dipole_eA"] == pytest.approx(np.sqrt(np.sum(np.abs(d) ** 2)), rel=1e-6)
    expected = spontaneous_emission_rate_per_s(doc["energy_eV"], float(np.sum(np.abs(d) ** 2)))
    assert doc["rate_per_s"] == pytest.approx(expected, rel=1e-6)
    assert "refractive index" in " ".join(doc["warnings"])  # a periodic cell, n not given
    # a pair beyond what WAVEDER holds: one clear error
    _one_line_error(run_cli("transition", str(run_dir), "--initial", "lumo+1", "--final",
                            "lumo+2"), "LVEL")


def test_backend_without_dipoles_refuses(tmp_path):
    """A backend without the transition_dipole capability (QE here) refuses in one line."""
    from perovdefect.calcs.backend import backend_class
    from perovdefect.errors import ProtocolError
    qe = backend_class("qe")
    assert "transition_dipole" not in qe.capabilities
    assert "transition_dipole" in backend_class("gpaw").capabilities
    with pytest.raises(ProtocolError, match="no transition dipoles"):
        qe.transition_dipoles(tmp_path, [0], [1], 0)
