"""Issue 21: native defects of the shipped hosts through pymatgen-analysis-defects' generators.

The defect lists are checked against the generators' own output, computed here independently
(counts, sites, multiplicities, charge states), the Wyckoff labels and orbit sizes against doped's
independent symmetry code (doped.utils.symmetry.get_wyckoff), the supercells against the host
they are cut from, and V_Br against `build_vacancies`.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from ase.geometry import get_distances
from ase.neighborlist import neighbor_list
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.errors import StructureError
from perovdefect.structures import build_crystal, build_vacancies
from perovdefect.structures.defects import (build_defects, check_types, native_defects,
                                            select_defects)
from perovdefect.structures.primitive import primitive_cell
from perovdefect.structures.vacancies import build_host

CRYSTALS = ("CsPbBr3-cubic", "CsPbBr3-Pnma", "Cs4PbBr6")
SYMPREC = 1e-3  # the shipped cells' tolerance (crystals.SYMPREC), restated for the generators


@pytest.fixture(scope="module")
def voronoi():
    """pmgad's VoronoiInterstitialGenerator candidates on each primitive cell (run once: ~7 s
    for Cs4PbBr6)."""
    from pymatgen.analysis.defects.generators import VoronoiInterstitialGenerator
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in CRYSTALS:
            prim = primitive_cell(build_crystal(name)).record.to_pymatgen()
            out[name] = (prim, VoronoiInterstitialGenerator().get_defects(prim, ["Br"]))
    return out


def _pmgad_site_defects(name: str) -> list[tuple]:
    """(name, conventional site index, multiplicity, charges) of pmgad's vacancies and
    antisites of the conventional cell, straight from the generators."""
    from pymatgen.analysis.defects.generators import AntiSiteGenerator, VacancyGenerator
    structure = build_crystal(name).to_pymatgen()
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for gen in (VacancyGenerator(symprec=SYMPREC), AntiSiteGenerator(symprec=SYMPREC)):
            for d in gen.get_defects(structure):
                label = d.name.replace("v_", "V_")
                out.append((label, int(d.defect_site_index), int(d.multiplicity),
                            tuple(d.get_charge_states())))
    return sorted(out)


@pytest.mark.parametrize("name", CRYSTALS)
def test_vacancies_and_antisites_are_the_generators_own(name):
    ours = native_defects(name, "vacancies,antisites")
    got = sorted((d.defect, d.site_index, d.multiplicity, d.charges) for d in ours)
    assert got == _pmgad_site_defects(name)
    assert all(d.generator_multiplicity == d.multiplicity for d in ours)
    # every species vacated, every ordered pair of species swapped
    assert {d.defect for d in ours if d.kind == "vacancy"} == {"V_Cs", "V_Pb", "V_Br"}
    assert {d.defect for d in ours if d.kind == "antisite"} == {
        "Cs_Pb", "Cs_Br", "Pb_Cs", "Pb_Br", "Br_Cs", "Br_Pb"}


@pytest.mark.parametrize("name", CRYSTALS)
def test_interstitials_are_the_generators_own_with_dopeds_wyckoff(name, voronoi):
    from doped.utils.symmetry import get_wyckoff
    from pymatgen.analysis.defects.core import Interstitial, Vacancy
    prim, candidates = voronoi[name]
    conv = build_crystal(name).to_pymatgen()
    ours = native_defects(name, "interstitials")
    assert len(ours) == 3 * len(candidates)  # no candidate shares an orbit in these hosts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oxi = {el: -int(Vacancy(conv, conv[i]).oxi_state)  # pmgad's own host oxidation states
               for el in ("Cs", "Pb", "Br")
               for i in [conv.indices_from_symbol(el)[0]]}
        for el in ("Cs", "Pb", "Br"):
            mine = [d for d in ours if d.element == el]
            assert len(mine) == len(candidates)
            orbits = []
            for d, cand in zip(mine, candidates):
                assert d.defect == f"{el}_i" and d.kind == "interstitial"
                assert np.allclose(d.position_A, cand.site.coords, atol=1e-6)
                assert d.generator_multiplicity == cand.multiplicity
                site = cand.site.__class__(el, cand.site.frac_coords, prim.lattice)
                assert d.charges == tuple(
                    Interstitial(prim, site, oxi_state=oxi[el]).get_charge_states())
                wyckoff, equiv = get_wyckoff(np.array(d.frac_coords), conv, equiv_sites=True)
                assert (d.wyckoff, d.multiplicity) == (wyckoff, len(equiv))
                orbits.append(equiv)
            for i, d in enumerate(mine):  # symmetry-distinct: no site in another's orbit
                for equiv in orbits[:i]:
                    frac = np.array([s.frac_coords for s in equiv])
                    _, dist = get_distances(conv.lattice.get_cartesian_coords(d.frac_coords),
                                            conv.lattice.get_cartesian_coords(frac),
                                            cell=conv.lattice.matrix, pbc=True)
                    assert dist.min() > 0.1
    assert {d.charges for d in ours if d.element == "Br"} == {(-2, -1, 0, 1)}


@pytest.mark.parametrize("name", CRYSTALS)
def test_wyckoff_labels_of_lattice_sites_agree_with_doped(name):
    from doped.utils.symmetry import get_wyckoff
    conv = build_crystal(name).to_pymatgen()
    for d in native_defects(name, "vacancies,antisites"):
        wyckoff, equiv = get_wyckoff(np.array(d.frac_coords), conv, equiv_sites=True)
        assert (d.wyckoff, d.multiplicity) == (wyckoff, len(equiv))


def _environment(atoms, index: int, cutoff_A: float = 6.0) -> list[tuple[str, float]]:
    i, j, d = neighbor_list("ijd", atoms, cutoff_A)
    sym = atoms.get_chemical_symbols()
    return sorted((sym[b], round(float(x), 2)) for a, b, x in zip(i, j, d) if a == index)


def test_the_two_cs_sites_of_cs4pbbr6_are_told_apart():
    crystal = build_crystal("Cs4PbBr6")
    cs = {d.label: d for d in native_defects("Cs4PbBr6", "vacancies")
          if d.defect == "V_Cs"}
    assert {(d.label, d.wyckoff, d.multiplicity) for d in cs.values()} == {
        ("V_Cs_6a", "6a", 6), ("V_Cs_18e", "18e", 18)}
    env = {k: _environment(crystal.atoms, d.site_index) for k, d in cs.items()}
    assert env["V_Cs_6a"] != env["V_Cs_18e"]
    # 6a Cs sits on the 3-fold axis between two octahedra: its Br shell has 3-fold degeneracy
    br = {k: [x for s, x in e if s == "Br"] for k, e in env.items()}
    assert all(n % 3 == 0 for n in np.unique(br["V_Cs_6a"], return_counts=True)[1])
    recs = build_defects("Cs4PbBr6", names="V_Cs,Br_Cs", min_image_distance_A=10.0,
                         charges=(0,))
    assert sorted(r.name for r in recs) == ["Br_Cs_18e_q0", "Br_Cs_6a_q0", "V_Cs_18e_q0",
                                            "V_Cs_6a_q0"]
    host = build_host("Cs4PbBr6", 10.0)
    for r in recs:
        m = r.metadata
        assert m["supercell_multiplicity"] == m["multiplicity"] * m["n_unit_cells"] // 3
        # the replaced host atom has the environment of its conventional-cell site
        assert _environment(host.atoms, m["supercell_site_index"]) == \
            env[f"V_Cs_{m['wyckoff']}"]


@pytest.mark.parametrize("name", CRYSTALS)
def test_v_br_is_build_vacancies_own(name):
    ours = build_defects(name, "vacancies", "V_Br", min_image_distance_A=10.0,
                         charges=(1, 0, -1))
    theirs = build_vacancies(name, 10.0, charges=(1, 0, -1))
    assert [r.name for r in ours] == [r.name for r in theirs]
    for a, b in zip(ours, theirs):
        assert a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
        assert np.allclose(a.atoms.positions, b.atoms.positions, atol=1e-8)
        assert np.allclose(a.atoms.cell.array, b.atoms.cell.array, atol=1e-10)
        for key, value in b.metadata.items():
            assert a.metadata[key] == value, key


def test_supercells_hold_the_defect_where_the_unit_cell_has_it():
    name = "CsPbBr3-Pnma"
    host = build_host(name, 9.0)
    crystal = build_crystal(name)
    records = build_defects(name, min_image_distance_A=9.0)
    expected = sum(len(d.charges) for d in native_defects(name))
    assert len(records) == expected
    n_host = len(host.atoms)
    for r in records:
        m, kind = r.metadata, r.metadata["defect_type"]
        assert m["image_distance_A"] >= 9.0 and r.atoms.cell.array.tolist() == \
            host.atoms.cell.array.tolist()
        assert len(r.atoms) == n_host + {"vacancy": -1, "antisite": 0, "interstitial": 1}[kind]
        # the position maps onto the unit-cell site modulo the conventional lattice
        frac = np.linalg.solve(crystal.atoms.cell.array.T, m["defect_position_A"])
        delta = (frac - m["site_frac_coords"] + 0.5) % 1 - 0.5
        assert np.linalg.norm(delta @ crystal.atoms.cell.array) < 1e-3
        if kind == "antisite":
            i = m["supercell_site_index"]
            assert r.atoms[i].symbol == m["defect"].split("_")[0]
            assert host.atoms[i].symbol == m["defect"].split("_")[1]
        if kind == "interstitial":
            assert r.atoms[0].symbol == m["defect"].split("_")[0]
            assert np.allclose(r.atoms.positions[0], m["defect_position_A"], atol=1e-4)
            i, j, d = neighbor_list("ijd", r.atoms, 4.0)
            assert d[i == 0].min() > 0.9  # pmgad's min_dist to the host atoms
        assert m["charge"] in m["charges_proposed"]
        assert m["valence_electrons"] == sum({"Cs": 9, "Pb": 14, "Br": 7}[s] for s in
                                             r.atoms.get_chemical_symbols()) - m["charge"]


def test_bad_names_and_types_are_refused():
    with pytest.raises(StructureError, match="unknown defect type 'foo'"):
        check_types("vacancies,foo")
    with pytest.raises(StructureError, match="unknown defect 'Br_Pbx'"):
        select_defects(native_defects("CsPbBr3-cubic", "antisites"), "Br_Pbx")
    with pytest.raises(StructureError, match="unknown compound"):
        native_defects("CsPbI3")


def test_cli_build_defects(tmp_path):
    from perovdefect.structures.record import read_structure
    out = tmp_path / "defects"
    args = ["build", "defects", "CsPbBr3-cubic", "--types", "vacancies,antisites",
            "--min-image-distance", "9", "--json", "-o", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    records = build_defects("CsPbBr3-cubic", "vacancies,antisites", min_image_distance_A=9.0)
    assert [s["name"] for s in summary] == [rec.name for rec in records]
    for s, rec in zip(summary, records):
        back = read_structure(out / s["file"])
        assert back.atoms.get_chemical_symbols() == rec.atoms.get_chemical_symbols()
        assert np.allclose(back.atoms.positions, rec.atoms.positions, atol=1e-5)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output
    for bad, message in ((["--types", "vacancies,x"], "unknown defect type 'x'"),
                         (["--defects", "V_I"], "unknown defect 'V_I'")):
        r = CliRunner().invoke(main, ["build", "defects", "CsPbBr3-cubic", *bad])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["build", "defects", "CsPbI3"])
    assert r.exit_code == 2 and "unknown compound 'CsPbI3'" in r.output
