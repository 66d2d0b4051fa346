"""Issue 19: luminescence through VASP (DeltaSCF with ISMEAR = -2 / FERWE / FERDO, the
charge-state route) under custodian, in campaigns run with rlaunch.

What is mocked and why: VASP is licensed and cannot exist here, so the scripted fake `vasp`
(tests/fakes/fake_vasp.py with fake_vasp_surfaces.py) stands in for the binary: it reads the
INCAR/POSCAR our input sets wrote and writes vasprun.xml (VASP's layout), CONTCAR, OSZICAR and
OUTCAR whose energies follow two harmonic surfaces chosen here, picked by the electron count and
the constrained occupations; custodian, its handlers, FireWorks and rlaunch are the real ones.
The numbers the analysis must reproduce (Delta Q, hbar omega, S, ZPL) are those surfaces'.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import constants as sc

from perovdefect.calcs.backend import get_backend
from perovdefect.calcs.protocol import Protocol
from perovdefect.calcs.vasp.inputs import potcar_choice, potcar_valences
from perovdefect.errors import ProtocolError
from perovdefect.structures import build_vacancies
from perovdefect.workflows.builder import model_records
from perovdefect.workflows.spec import ModelSpec
from tests.conftest import luminescence_json, run_cli

FAKES = Path(__file__).parent / "fakes"
#: the chosen surfaces: hbar omega (meV) of the ground / excited surface, Delta Q (amu^1/2 A)
#: between their minima, ZPL (eV), the ground minimum's energy (eV)
HW_G_MEV, HW_E_MEV, DELTA_Q, ZPL_EV, E0_EV = 12.0, 10.0, 2.5, 2.40, -350.0
CELL = {"compound": "Cs4PbBr6", "model": "supercell", "min_image_distance_A": 9.5}


def curvature(hbar_omega_meV: float) -> float:
    """omega^2 in eV / (amu A^2) of a surface with phonon energy hbar omega (meV)."""
    omega = hbar_omega_meV * 1e-3 * sc.e / sc.hbar
    return omega ** 2 * sc.atomic_mass * 1e-20 / sc.e


def huang_rhys(hbar_omega_meV: float, dq: float) -> float:
    """S = omega Delta Q^2 / (2 hbar) (SI), the textbook definition."""
    omega = hbar_omega_meV * 1e-3 * sc.e / sc.hbar
    return omega * (dq * np.sqrt(sc.atomic_mass) * 1e-10) ** 2 / (2 * sc.hbar)


def surface_system(record, states: list[dict], seed: int = 19, shift_A: float = 0.02) -> dict:
    """One system of the fake's configuration: a random mass-weighted unit pattern u, and a
    reference (ground minimum) geometry shifted from the builder's so the relaxation moves."""
    rng = np.random.default_rng(seed)
    atoms = record.atoms
    m = atoms.get_masses()
    v = rng.normal(size=(len(atoms), 3))
    u = v / np.sqrt(np.sum(m[:, None] * v ** 2))
    r0 = atoms.positions + shift_A * rng.normal(size=(len(atoms), 3))
    return {"symbols": atoms.get_chemical_symbols(), "masses_amu": m.tolist(),
            "zval": potcar_valences(potcar_choice(record)), "reference_positions_A": r0.tolist(),
            "mode_A": u.tolist(), "perpendicular_curvature_eV_per_amu_A2": 5.0,
            "states": states}


def state(nelect: int, excited: bool, q0: float, e0: float, hw_meV: float) -> dict:
    return {"nelect": nelect, "excited": excited, "q0_amu05_A": q0, "e0_eV": e0,
            "curvature_eV_per_amu_A2": curvature(hw_meV)}


def deltascf_surfaces(path: Path) -> Path:
    """V_Br^0 of the 21-atom cell on two surfaces (its ground state and the down-spin
    excitation), and the 22-atom host on one, as the fake reads them."""
    host, defects = model_records(ModelSpec(**CELL, charges=[0]))
    (_, vbr), = defects
    n = 177  # Cs_sv 9 x 8 + Pb_d 14 x 2 + Br 7 x 11
    path.write_text(json.dumps({"systems": [
        surface_system(vbr, [state(n, False, 0.0, E0_EV, HW_G_MEV),
                             state(n, True, DELTA_Q, E0_EV + ZPL_EV, HW_E_MEV)]),
        surface_system(host, [state(184, False, 0.0, -360.0, 15.0)], seed=7)]}))
    return path


@pytest.fixture
def fake_vasp_bin(tmp_path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("vasp_std", "vasp_ncl", "vasp_gam"):
        (bindir / name).symlink_to(FAKES / "fake_vasp.py")
    return bindir


def _incar(path: Path) -> dict:
    from pymatgen.io.vasp import Incar
    return dict(Incar.from_file(path))


def _excited_inputs(tmp_path: Path, record, excitation: str, **protocol) -> dict:
    backend = get_backend("vasp")
    p = backend.effective_protocol(record, Protocol(name="relax-excited", task="relax",
                                                    excitation=excitation, kpoints=(1, 1, 1),
                                                    **protocol))
    backend.check(record, p)
    d = tmp_path / f"{record.name}_{excitation.split(':')[0]}_{p.functional}"
    backend.write_inputs(record, p, d)
    return _incar(d / "INCAR")


def assert_one_promoted_electron(incar: dict, n_electrons: int, spin: str) -> None:
    """ISMEAR -2, FERWE/FERDO of NBANDS values summing to the electron count, and in `spin`
    exactly one empty band below an occupied one (the hole) with the electron right above."""
    assert incar["ISMEAR"] == -2 and incar["ISPIN"] == 2
    up, down = np.array(incar["FERWE"]), np.array(incar["FERDO"])
    assert len(up) == len(down) == incar["NBANDS"]
    assert up.sum() + down.sum() == pytest.approx(n_electrons, abs=1e-9)
    assert set(np.unique(np.r_[up, down])) <= {0.0, 1.0}
    ground_up, ground_down = (n_electrons + 1) // 2, n_electrons // 2
    excited, other = (down, up) if spin == "down" else (up, down)
    n_ex = ground_down if spin == "down" else ground_up
    # the other channel stays in its aufbau ground state
    assert other.tolist() == [1.0] * (ground_up if spin == "down" else ground_down) + [0.0] * (
        len(other) - (ground_up if spin == "down" else ground_down))
    holes = [i for i in range(len(excited)) if excited[i] == 0 and excited[i + 1:].any()]
    assert holes == [n_ex - 1]                       # exactly one hole: the ground HOMO
    assert excited[n_ex] == 1.0 and excited[n_ex + 1:].sum() == 0  # the electron: its LUMO
    assert incar["NBANDS"] > n_ex + 1                # NBANDS holds the promoted band (+ empties)
    assert incar["LDIAG"] is False and incar["ALGO"].lower() == "all"


def test_deltascf_incars_of_the_cs4pbbr6_vbr_cell(tmp_path):
    q0, qp = build_vacancies("Cs4PbBr6", 9.5, None, (0, 1))
    assert len(q0.atoms) == 21
    for rec, n in ((q0, 177), (qp, 176)):
        for spin in ("down", "up"):
            incar = _excited_inputs(tmp_path, rec, f"{spin}:homo->lumo")
            assert_one_promoted_electron(incar, n, spin)
            assert incar.get("NELECT") == (None if rec.charge == 0 else n)
            assert incar["NBANDS"] % 8 == 0
    # HSE06 (a static, as the ladder does hybrids): the hybrid tags as for ground states
    backend = get_backend("vasp")
    p = backend.effective_protocol(q0, Protocol(name="cc-excited", functional="HSE06",
                                                excitation="down:homo->lumo",
                                                kpoints=(1, 1, 1)))
    backend.write_inputs(q0, p, tmp_path / "hse")
    incar = _incar(tmp_path / "hse" / "INCAR")
    assert_one_promoted_electron(incar, 177, "down")
    assert incar["LHFCALC"] is True and incar["AEXX"] == 0.25 and incar["HFSCREEN"] == 0.2
    info = json.loads((tmp_path / "hse" / "perovdefect_inputs.json").read_text())
    assert info["executable"] == "vasp_gam"
    assert info["constrained_occupations"]["hole_band"] == 87
    assert any("ALGO" in n for n in info["notes"])  # the hybrid's ALGO = Normal overridden
    # the user's NBANDS is kept when it holds the electron, refused when it does not
    big = get_backend("vasp", incar={"NBANDS": 120})
    big.write_inputs(q0, p, tmp_path / "nb")
    assert _incar(tmp_path / "nb" / "INCAR")["NBANDS"] == 120
    with pytest.raises(ProtocolError, match="NBANDS = 80 does not hold"):
        get_backend("vasp", incar={"NBANDS": 80}).write_inputs(q0, p, tmp_path / "nb2")


def test_deltascf_refusals(tmp_path):
    q0 = build_vacancies("Cs4PbBr6", 9.5, None, (0,))[0]
    backend = get_backend("vasp")
    assert "constrained_occupations" in backend.capabilities
    with pytest.raises(ProtocolError, match="SOC"):  # spin channels undefined with spinors
        Protocol(functional="HSE06", soc=True, excitation="down:homo->lumo")
    with pytest.raises(ProtocolError, match="Gamma-only"):
        backend.check(q0, Protocol(excitation="down:homo->lumo", kpoints=(2, 2, 2)))
    with pytest.raises(ProtocolError, match="Gamma-only"):
        backend.check(None, Protocol(excitation="down:homo->lumo", kpoints=(2, 1, 1)))
    with pytest.raises(ProtocolError, match="FERDO"):
        get_backend("vasp", incar={"FERDO": [1.0]})
    with pytest.raises(ProtocolError, match="nbands_multiple"):
        get_backend("vasp", nbands_multiple=0)


def test_custodian_run_and_the_occupation_check(tmp_path, fake_vasp_bin, monkeypatch):
    """A DeltaSCF step through custodian: the parser says the occupations held; a run that
    dropped them (VASP 6 can, after an ionic step) is flagged in the document."""
    monkeypatch.setenv("PATH", f"{fake_vasp_bin}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VASP_SURFACES", str(deltascf_surfaces(tmp_path / "s.json")))
    q0 = build_vacancies("Cs4PbBr6", 9.5, None, (0,))[0]
    backend = get_backend("vasp")
    p = Protocol(name="cc-excited", excitation="down:homo->lumo", kpoints=(1, 1, 1))
    worker = {"vasp_gam_cmd": "vasp_gam"}  # the fake, on the PATH
    doc, _ = backend.execute(q0, p, tmp_path / "ok", worker)
    held = doc.settings["constrained_occupations"]
    assert held == {**held, "held": True, "spin": "down", "hole_band": 87, "electron_band": 88}
    assert not [w for w in doc.warnings if "did not hold" in w]
    monkeypatch.setenv("FAKE_VASP_RESET_OCCUPATIONS", "1")
    with pytest.warns(UserWarning, match="did not hold"):
        doc, _ = backend.execute(q0, p, tmp_path / "reset", worker)
    assert doc.settings["constrained_occupations"]["held"] is False
    assert any("did not hold in spin down" in w for w in doc.warnings)
    # custodian ran it without the corrections that would drop the constraint
    from perovdefect.calcs.vasp.deltascf import CONSTRAINT_BREAKING_ERRORS
    from custodian.vasp.handlers import VaspErrorHandler
    assert CONSTRAINT_BREAKING_ERRORS < set(VaspErrorHandler.error_msgs)


def write_campaign(path: Path, **luminescence) -> Path:
    data = {"name": "vbr-lum-vasp", "code": "vasp", "tier": "pbe", "relax": False, "pl_nm": 517,
            "models": [{**CELL, "charges": luminescence.pop("model_charges", [0])}],
            "protocol": {"cutoff_eV": 400},
            "luminescence": {"excitation": "down:homo->lumo", "pl_fwhm_nm": 14,
                             **luminescence}}
    path.write_text(yaml.safe_dump(data))
    return path


def run_campaign(tmp_path: Path, camp: Path, env: dict) -> Path:
    proj = tmp_path / "proj"
    r = run_cli("campaign", "submit", str(camp), "--project", str(proj))
    assert r.returncode == 0, r.stderr
    r = run_cli("campaign", "run", "--project", str(proj), env=env)
    log = proj / "rlaunch.log"
    assert r.returncode == 0, r.stderr + (log.read_text()[-3000:] if log.exists() else "")
    return proj


@pytest.mark.slow
def test_vasp_deltascf_campaign_reproduces_the_surfaces(tmp_path, fake_vasp_bin):
    env = {"PATH": f"{fake_vasp_bin}:{os.environ['PATH']}",
           "FAKE_VASP_SURFACES": str(deltascf_surfaces(tmp_path / "s.json"))}
    proj = run_campaign(tmp_path, write_campaign(tmp_path / "c.yaml"), env)
    status = json.loads(run_cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["states"] == {"COMPLETED": 4}  # host, V_Br^0, analysis, luminescence
    root = proj / "runs" / "vbr-lum-vasp" / "Cs4PbBr6_supercell-d9.5" / "luminescence"
    result = json.loads((root / "luminescence.json").read_text())
    cc = result["cc"]
    assert result["code"] == "vasp" and result["model"] == "periodic"
    assert cc["delta_q_amu05_A"] == pytest.approx(DELTA_Q, rel=1e-6)
    assert cc["ground"]["hbar_omega_meV"] == pytest.approx(HW_G_MEV, rel=1e-6)
    assert cc["excited"]["hbar_omega_meV"] == pytest.approx(HW_E_MEV, rel=1e-6)
    assert cc["zpl_eV"] == pytest.approx(ZPL_EV, abs=1e-6)
    assert cc["huang_rhys_ground"] == pytest.approx(huang_rhys(HW_G_MEV, DELTA_Q), rel=1e-6)
    assert cc["huang_rhys_excited"] == pytest.approx(huang_rhys(HW_E_MEV, DELTA_Q), rel=1e-6)
    assert result["comparison"]["measured_peak_nm"] == 517
    # custodian ran every step; the relaxations went through its ZBRENT correction
    relax = json.loads((root / "relax-excited" / "result.json").read_text())
    assert any("zbrent" in c["errors"] for c in relax["settings"]["custodian_corrections"])
    assert relax["settings"]["constrained_occupations"]["held"] is True
    assert (root / "relax-excited" / "executables.log").read_text().split() == ["vasp_gam"] * 2
    # the excited-state INCARs: one promoted electron in spin down of the 177 electrons
    for step in ("relax-excited", "cc-excited+0.50"):
        assert_one_promoted_electron(_incar(root / step / "INCAR"), 177, "down")
    ground = _incar(root / "cc-ground+0.00" / "INCAR")
    assert ground["ISMEAR"] == 0 and "FERWE" not in ground
    r = run_cli("luminescence", str(root), "--json")
    assert r.returncode == 0, r.stderr
    assert luminescence_json(r.stdout)["zpl_eV"] == pytest.approx(ZPL_EV, abs=1e-6)
    check_from_runs_on_campaign_outputs(root, result, tmp_path)


def check_from_runs_on_campaign_outputs(root: Path, result: dict, tmp_path: Path) -> None:
    """`luminescence DIR --from-runs` on the campaign's own run folders (its result files and
    vasprun.xml), with a WAVEDER (VASP's layout, written here: no VASP) at the excited minimum:
    the same diagram, and the radiative lifetime from the dipole put there."""
    from perovdefect.optics.radiative import spontaneous_emission_rate_per_s
    from perovdefect.optics.run import LuminescenceResult
    from tests.test_transition import _write_waveder
    # spin down of the excited state: the electron in band 88 (homo), the hole in 87 (lumo)
    cder = np.zeros((104, 104, 1, 2, 3), complex)
    d = np.array([0.2, 0.1j, -0.3])
    cder[88, 87, 0, 1] = d
    for step in ("cc-excited+1.00", "relax-excited"):  # both hold the excited minimum
        _write_waveder(root / step / "WAVEDER", cder)
    out = tmp_path / "from_runs.json"
    r = run_cli("luminescence", str(root), "--from-runs", "-o", str(out))
    assert r.returncode == 0, r.stderr
    lum = LuminescenceResult.from_json(out)
    assert lum.from_runs.route == "delta-scf" and lum.excitation == "down:homo->lumo"
    for key in ("delta_q_amu05_A", "zpl_eV", "huang_rhys_ground", "huang_rhys_excited"):
        assert getattr(lum.cc, key) == pytest.approx(result["cc"][key], rel=1e-6), key
    assert lum.cc.ground.hbar_omega_meV == pytest.approx(HW_G_MEV, rel=1e-6)
    assert lum.cc.excited.hbar_omega_meV == pytest.approx(HW_E_MEV, rel=1e-6)
    assert len(lum.from_runs.points) == 12  # 5 + 5 statics and the two relaxations
    assert sum("computed twice" in w for w in lum.warnings) == 2  # a relaxation = a static
    rad = lum.radiative
    assert rad is not None and rad.dipole_eA == pytest.approx(np.linalg.norm(d), rel=1e-6)
    assert rad.energy_eV == pytest.approx(lum.cc.e_em_eV)
    rate = spontaneous_emission_rate_per_s(lum.cc.e_em_eV, float(np.sum(np.abs(d) ** 2)))
    assert rad.radiative_lifetime_ns == pytest.approx(1e9 / rate, rel=1e-6)


# -- the charge-state route ----------------------------------------------------------------------
def charge_surfaces(path: Path) -> tuple[Path, float]:
    """V_Br^0 (177 electrons) and V_Br^+ (176) of the 21-atom cell on two surfaces, the host
    on one; returns the file and E(q+1 min) - E(q0 min) (eV)."""
    host, defects = model_records(ModelSpec(**CELL, charges=[0, 1]))
    vbr = dict(defects)["V_Br_q0"]
    gap = 5.0
    path.write_text(json.dumps({"systems": [
        surface_system(vbr, [state(177, False, 0.0, E0_EV, HW_G_MEV),
                             state(176, False, DELTA_Q, E0_EV + gap, HW_E_MEV)]),
        surface_system(host, [state(184, False, 0.0, -360.0, 15.0)], seed=7)]}))
    return path, gap


def pymatgen_harmonic_defects(root: Path, fractions: list[str]):
    """pymatgen-analysis-defects' HarmonicDefect of each charge state from the vasprun.xml
    files of the route (its own parser and fit), and its Delta Q."""
    import warnings

    from pymatgen.analysis.defects.ccd import HarmonicDefect, get_dQ
    from pymatgen.io.vasp import Vasprun
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # each list starts at its own relaxed geometry, in order of distance from it
        final = [Vasprun(str(root / f"cc-q+0{f}" / "vasprun.xml")) for f in fractions]
        initial = [Vasprun(str(root / f"cc-q+1{f}" / "vasprun.xml"))
                   for f in reversed(fractions)]
        hd_f = HarmonicDefect.from_vaspruns(final, charge_state=0, relaxed_index=0,
                                            defect_band=[(88, 0, 1)])
        hd_i = HarmonicDefect.from_vaspruns(initial, charge_state=1, relaxed_index=0,
                                            defect_band=[(88, 0, 1)])
    return hd_f, hd_i, get_dQ(hd_f.relaxed_structure, hd_i.relaxed_structure)


def pymatgen_huang_rhys(dq: float, omega_eV: float) -> float:
    """S from pymatgen-analysis-defects' analytic overlap of two displaced oscillators of the
    same frequency: <0|0'> = exp(-S/2) (Zapol's formula, taken from nonrad)."""
    from pymatgen.analysis.defects.recombination import analytic_overlap_NM
    return float(-2.0 * np.log(analytic_overlap_NM(dq, omega_eV, omega_eV, 0, 0)))


def test_charge_route_spec_errors(tmp_path):
    from perovdefect.errors import CampaignError
    from perovdefect.workflows.spec import load_campaign
    for lum, model_charges, msg in (
            ({"route": "charge"}, [0, 1], "charges: \\[q_initial, q_final\\]"),
            ({"route": "charge", "charges": [1, -1]}, [1, -1], "one carrier apart"),
            ({"route": "charge", "charges": [1, 0]}, [0], "no model with charges"),
            ({"charges": [1, 0]}, [0, 1], "belong to route: charge")):
        with pytest.raises(CampaignError, match=msg):
            load_campaign(write_campaign(tmp_path / "c.yaml", model_charges=model_charges, **lum))
    cluster = yaml.safe_load(write_campaign(tmp_path / "c.yaml", route="charge",
                                            charges=[1, 0]).read_text())
    cluster["models"] = [{"compound": "Cs4PbBr6", "model": "cluster", "charges": [0, 1]}]
    (tmp_path / "k.yaml").write_text(yaml.safe_dump(cluster))
    with pytest.raises(CampaignError, match="needs a supercell model"):
        load_campaign(tmp_path / "k.yaml")
    # DeltaSCF luminescence runs at Gamma whatever k-point density the ladder uses
    data = yaml.safe_load(write_campaign(tmp_path / "c.yaml").read_text())
    data["protocol"]["kpoint_density_inv_A"] = 2.5
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(data))
    spec = load_campaign(tmp_path / "d.yaml")
    assert "kpoint_density_inv_A" not in spec.luminescence_physics()


@pytest.mark.slow
def test_vasp_charge_route_campaign_against_pymatgen_analysis_defects(tmp_path, fake_vasp_bin):
    path, gap = charge_surfaces(tmp_path / "s.json")
    env = {"PATH": f"{fake_vasp_bin}:{os.environ['PATH']}", "FAKE_VASP_SURFACES": str(path)}
    camp = write_campaign(tmp_path / "c.yaml", model_charges=[0, 1], route="charge",
                          charges=[1, 0])
    proj = run_campaign(tmp_path, camp, env)
    status = json.loads(run_cli("campaign", "status", "--project", str(proj), "--json").stdout)
    assert status["states"] == {"COMPLETED": 5}  # host, V_Br^0, V_Br^+, analysis, route
    root = proj / "runs" / "vbr-lum-vasp" / "Cs4PbBr6_supercell-d9.5" / "luminescence"
    result = json.loads((root / "luminescence.json").read_text())
    cc, route = result["cc"], result["charge_route"]
    # the chosen surfaces
    assert cc["delta_q_amu05_A"] == pytest.approx(DELTA_Q, rel=1e-6)
    assert cc["ground"]["hbar_omega_meV"] == pytest.approx(HW_G_MEV, rel=1e-6)
    assert cc["excited"]["hbar_omega_meV"] == pytest.approx(HW_E_MEV, rel=1e-6)
    host = json.loads((root / "host" / "result.json").read_text())
    assert route["band_edge"] == "cbm" and route["band_edge_eV"] == host["cbm_eV"]
    assert cc["zpl_eV"] == pytest.approx(gap + host["cbm_eV"], abs=1e-6)  # E(+) + E_CBM - E(0)
    assert any("no finite-size correction" in w for w in result["warnings"])
    assert result["excitation"] == "q+1 + e(CBM) -> q+0"
    # pymatgen-analysis-defects on the same vasprun.xml files
    hd_f, hd_i, dq = pymatgen_harmonic_defects(root, ["+0.00", "+0.25", "+0.50", "+0.75",
                                                      "+1.00"])
    assert cc["delta_q_amu05_A"] == pytest.approx(dq, rel=1e-6)
    assert cc["ground"]["hbar_omega_meV"] == pytest.approx(1e3 * hd_f.omega_eV, rel=1e-6)
    assert cc["excited"]["hbar_omega_meV"] == pytest.approx(1e3 * hd_i.omega_eV, rel=1e-6)
    assert cc["huang_rhys_ground"] == pytest.approx(pymatgen_huang_rhys(dq, hd_f.omega_eV),
                                                    rel=1e-6)
    assert cc["huang_rhys_excited"] == pytest.approx(pymatgen_huang_rhys(dq, hd_i.omega_eV),
                                                     rel=1e-6)
    # and both against the textbook S = omega Delta Q^2 / (2 hbar) of the chosen surfaces
    assert cc["huang_rhys_ground"] == pytest.approx(huang_rhys(HW_G_MEV, DELTA_Q), rel=1e-6)
    # --from-runs on the route's own folders, the band edge from its host step
    r = run_cli("luminescence", str(root), "--from-runs", "--charges", "1,0", "--host",
                str(root / "host"), "--json")
    assert r.returncode == 0, r.stderr
    out = luminescence_json(r.stdout)
    assert out["zpl_eV"] == pytest.approx(cc["zpl_eV"], abs=1e-6)
    assert out["charge_route"]["band_edge_eV"] == host["cbm_eV"]
    assert out["huang_rhys_excited"] == pytest.approx(cc["huang_rhys_excited"], rel=1e-6)


def test_hpc_example_excited_state_incar(tmp_path):
    """examples/hpc_vasp_hse06_soc.yaml's luminescence Firework: the INCAR of its
    relax-excited step as the worker writes it (Gamma, the campaign's VASP settings)."""
    from perovdefect.optics.run import PERIODIC_KPOINTS
    from perovdefect.workflows.builder import model_workflow
    from perovdefect.workflows.spec import load_campaign
    from perovdefect.workflows.tasks import record_from_dict
    spec = load_campaign(Path(__file__).parents[1] / "examples" / "hpc_vasp_hse06_soc.yaml")
    (model,) = spec.luminescence_models()
    wf = model_workflow(spec, model, tmp_path / "runs")
    (fw,) = [f for f in wf.fws if f.name.endswith("/luminescence")]
    task = fw.tasks[0]
    assert "kpoint_density_inv_A" not in task["physics"]  # the ladder's mesh stays the ladder's
    rec = record_from_dict(task["structure"])
    backend = get_backend("vasp", **task["settings"])
    p = backend.effective_protocol(rec, Protocol(
        name="relax-excited", task="relax", excitation=task["excitation"],
        **{**task["physics"], "kpoints": PERIODIC_KPOINTS}))
    backend.check(rec, p)
    backend.write_inputs(rec, p, tmp_path / "relax-excited")
    incar = _incar(tmp_path / "relax-excited" / "INCAR")
    n = backend.valence_electrons(rec, p)
    assert n % 2 == 1  # V_Br^0: an odd count
    assert_one_promoted_electron(incar, n, "down")
    assert incar["NCORE"] == 16 and incar["NBANDS"] % 8 == 0 and incar["NSW"] > 0
