"""Issue 21: ShakeNBreak's distorted starting structures, and naming a reconstruction from bond
lengths.

The distortions are checked against ShakeNBreak's own lower-level functions called here on the
same unperturbed defect (distort_and_rattle, the same seed and amplitude: identical positions),
the neighbour counts against the octet rule written out here, the bond lengths against the
distortion factors, and the Dimer against pymatgen's covalent radii. The reconstruction names
are checked on constructed geometries on either side of the stated thresholds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.geometry import get_distances
from click.testing import CliRunner

from perovdefect.cli.main import main
from perovdefect.errors import StructureError
from perovdefect.structures.defects import build_defects
from perovdefect.structures.distortions import build_distortions
from perovdefect.structures.reconstructions import (bond_cutoff_A, find_reconstructions,
                                                    reconstruction_name)
from perovdefect.structures.vacancies import build_host

SEED = 11


def octet_neighbours(defect_oxi_state: int, charge: int) -> int:
    """Neighbours to distort: the electrons the charged defect adds to (or takes from) the
    ionic picture, n = |oxi - q|, folded by the octet rule (8 - n above 4) (ShakeNBreak's rule,
    npj Comput. Mater. 9, 28 (2023), restated here)."""
    n = abs(defect_oxi_state - charge)
    return 8 - n if n > 4 else n


def _snb_reference(unperturbed, defect_site: dict, meta: dict):
    """ShakeNBreak's distort_and_rattle on the unperturbed structure, with the record's
    neighbour count, factor, amplitude and seed."""
    from shakenbreak.distortions import distort_and_rattle
    factor = "Dimer" if meta["distortion"] == "Dimer" else (meta["distortion_factor"] or 1.0)
    return distort_and_rattle(unperturbed.to_pymatgen(), distortion_factor=factor,
                              num_nearest_neighbours=meta["num_distorted_neighbours"],
                              stdev=meta["rattle_stdev_A"], seed=SEED, **defect_site)


def _distance(atoms, i: int, point) -> float:
    return float(get_distances(atoms.positions[i], np.asarray(point), cell=atoms.cell,
                               pbc=True)[1][0, 0])


@pytest.mark.parametrize("charge", [1, 0, -1])
def test_v_br_distortions_are_shakenbreaks(charge):
    bonds = [-0.3, 0.2]
    recs = build_distortions("CsPbBr3-cubic", "V_Br", charge, 12.0, seed=SEED,
                             bond_distortions=bonds)
    host = build_host("CsPbBr3-cubic", 12.0)
    un = recs[0]
    assert un.metadata["distortion"] == "Unperturbed"
    (ref,) = build_defects("CsPbBr3-cubic", names="V_Br", charges=(charge,),
                           min_image_distance_A=12.0)
    assert np.allclose(un.atoms.positions, ref.atoms.positions, atol=1e-10)
    vac = host.atoms.positions[un.metadata["supercell_site_index"]]
    site = {"frac_coords": np.linalg.solve(host.atoms.cell.array.T, vac)}
    n = octet_neighbours(+1, charge)  # V_Br: Br- removed, oxidation state +1
    labels = [r.metadata["distortion"] for r in recs[1:]]
    if n == 0:  # nothing to distort: one rattled structure (and the Dimer)
        assert labels == ["Rattled", "Dimer"]
    else:
        assert labels == ["Bond_Distortion_-30.0%", "Bond_Distortion_20.0%", "Dimer"]
    for r in recs[1:]:
        m = r.metadata
        expected = _snb_reference(un, site, m)
        assert np.allclose(r.atoms.positions, expected["distorted_structure"].cart_coords,
                           atol=1e-8)
        assert [list(a) for a in m["distorted_atoms"]] == \
            [[int(i), str(el)] for i, el in expected["distorted_atoms"]]
        if m["bond_distortion"] is not None:
            assert m["num_distorted_neighbours"] == n
            assert m["distortion_factor"] == pytest.approx(1 + m["bond_distortion"])
            for i, _ in m["distorted_atoms"]:  # bond to the vacancy scaled by the factor
                assert _distance(r.atoms, i, vac) == pytest.approx(
                    m["distortion_factor"] * _distance(un.atoms, i, vac), abs=1e-6)
        assert 0.25 < m["rattle_stdev_A"] < 0.35  # 10 % of the 2.95 A Pb-Br bond


def test_dimer_pulls_the_two_pb_across_the_vacancy_to_a_pb_pb_bond():
    from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
    recs = build_distortions("CsPbBr3-cubic", "V_Br", -1, 12.0, seed=SEED,
                             bond_distortions=[])
    un, dimer = recs[0], recs[-1]
    assert dimer.metadata["distortion"] == "Dimer"
    (i, a), (j, b) = dimer.metadata["distorted_atoms"]
    assert a == b == "Pb"
    bond = 2 * CovalentRadius.radius["Pb"]
    assert dimer.metadata["dimer_bond_length_A"] == pytest.approx(bond, abs=1e-4)
    assert dimer.atoms.get_distance(i, j, mic=True) == pytest.approx(bond, abs=1e-6)
    # the two Pb were the vacancy's neighbours across it (a lattice constant apart) and their
    # midpoint, the vacancy, stays put
    assert un.atoms.get_distance(i, j, mic=True) > 5.5  # one lattice constant in the host
    vac = un.metadata["defect_position_A"]
    assert _distance(un.atoms, i, vac) + _distance(un.atoms, j, vac) == pytest.approx(
        un.atoms.get_distance(i, j, mic=True), abs=1e-4)
    assert reconstruction_name(dimer.atoms, vac) == "Pb-Pb dimer"
    assert reconstruction_name(un.atoms, vac) == "none"


def test_antisite_and_interstitial_neighbour_counts_follow_the_octet_rule():
    for defect, oxi, charges in (("Br_Cs_18e", -2, (1, 0, -1, -2)), ("Br_i_18e", -1, (0, 1))):
        for q in charges:
            recs = build_distortions("Cs4PbBr6", defect, q, 10.0, seed=SEED,
                                     bond_distortions=[0.3])
            un, r = recs[0], recs[1]
            assert un.metadata["oxi_state"] == oxi
            n = octet_neighbours(oxi, q)
            assert r.metadata["num_distorted_neighbours"] == n
            site = {"site_index": int(un.metadata["supercell_site_index"])}
            expected = _snb_reference(un, site, r.metadata)
            assert np.allclose(r.atoms.positions, expected["distorted_structure"].cart_coords,
                               atol=1e-8)
            assert len(recs) == 2  # no Dimer unless asked, for non-vacancies
            if n:
                assert r.metadata["distortion"] == "Bond_Distortion_30.0%"
                centre = un.atoms.positions[site["site_index"]]
                for i, _ in r.metadata["distorted_atoms"]:
                    assert _distance(r.atoms, i, centre) == pytest.approx(
                        1.3 * _distance(un.atoms, i, centre), abs=1e-6)


def test_distortion_errors():
    with pytest.raises(StructureError, match="names 2 sites"):
        build_distortions("Cs4PbBr6", "V_Cs", 0)
    with pytest.raises(StructureError, match="unknown defect 'V_X'"):
        build_distortions("Cs4PbBr6", "V_X", 0)
    with pytest.raises(StructureError, match="exceeds"):
        build_distortions("Cs4PbBr6", "V_Br", 7)


def test_cli_build_distortions(tmp_path):
    from perovdefect.structures.record import read_structure
    out = tmp_path / "snb"
    args = ["build", "distortions", "CsPbBr3-cubic", "V_Br", "--charge", "0",
            "--min-image-distance", "12", "--bond-distortions", "-0.4,0.4", "--seed", str(SEED),
            "--json", "-o", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [s["distortion"] for s in summary] == ["Unperturbed", "Bond_Distortion_-40.0%",
                                                 "Bond_Distortion_40.0%", "Dimer"]
    assert [s["num_distorted_neighbours"] for s in summary] == [0, 1, 1, 2]
    assert summary == json.loads((out / "summary.json").read_text())
    recs = build_distortions("CsPbBr3-cubic", "V_Br", 0, 12.0, seed=SEED,
                             bond_distortions=[-0.4, 0.4])
    for s, rec in zip(summary, recs):
        back = read_structure(out / s["file"])
        assert np.allclose(back.atoms.positions, rec.atoms.positions, atol=1e-5)
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "--force" in again.output
    for bad, message in ((["Cs4PbBr6", "V_Cs", "--charge", "0"], "names 2 sites"),
                         (["Cs4PbBr6", "Cs_X", "--charge", "0"], "unknown defect 'Cs_X'"),
                         (["Cs4PbBr6", "V_Br"], "Missing option '--charge'"),
                         (["Cs4PbBr6", "V_Br", "--charge", "0", "--bond-distortions", "-1.2"],
                          "not in the range")):
        r = CliRunner().invoke(main, ["build", "distortions", *bad])
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


# --- reconstruction names from bond lengths ------------------------------------------------


def _pull_pair(atoms: Atoms, i: int, j: int, distance_A: float) -> Atoms:
    """A copy with atoms i and j moved symmetrically about their midpoint to `distance_A`."""
    new = atoms.copy()
    new.set_distance(i, j, distance_A, fix=0.5, mic=True)
    return new


def test_pb_pb_dimer_named_below_the_stated_cutoff_only():
    (rec,) = build_defects("CsPbBr3-cubic", names="V_Br", charges=(-1,),
                           min_image_distance_A=10.0)
    vac = rec.metadata["defect_position_A"]
    pb = [k for k, s in enumerate(rec.atoms.get_chemical_symbols()) if s == "Pb"]
    i, j = sorted(pb, key=lambda k: _distance(rec.atoms, k, vac))[:2]
    cutoff = bond_cutoff_A("Pb")
    assert cutoff == pytest.approx(1.25 * 2.92)  # the module's stated threshold, 3.65 A
    assert reconstruction_name(rec.atoms, vac) == "none"
    dimer = _pull_pair(rec.atoms, i, j, 3.2)
    (found,) = find_reconstructions(dimer, vac)
    assert (found.name, set(found.indices)) == ("Pb-Pb dimer", {i, j})
    assert found.bond_lengths_A == pytest.approx((3.2,))
    assert reconstruction_name(_pull_pair(rec.atoms, i, j, cutoff - 0.02), vac) == \
        "Pb-Pb dimer"
    assert reconstruction_name(_pull_pair(rec.atoms, i, j, cutoff + 0.02), vac) == "none"
    # a dimer farther than the search radius from the defect is not this defect's
    assert reconstruction_name(dimer, vac, radius_A=1.0) == "none"


def test_br3_unit_and_br2_dimer_in_a_box():
    def chain(n: int, bond_A: float) -> Atoms:
        return Atoms(["Br"] * n + ["Cs"], positions=[[5 + k * bond_A, 10, 10] for k in range(n)]
                     + [[15, 15, 15]], cell=[20, 20, 20], pbc=True)
    centre = [5 + 2.6, 10, 10]
    assert reconstruction_name(chain(3, 2.6), centre) == "Br3 unit"  # Br3-: 2.5-2.9 A
    (found,) = find_reconstructions(chain(3, 2.6), centre)
    assert found.indices == (0, 1, 2) and found.bond_lengths_A == pytest.approx((2.6,))
    assert reconstruction_name(chain(2, 2.28), centre) == "Br2 dimer"  # Br2: 2.28 A
    assert reconstruction_name(chain(3, bond_cutoff_A("Br") + 0.05), centre) == "none"
    assert reconstruction_name(chain(4, 2.7), centre) == "Br4 cluster"


def test_a_defect_and_a_foreign_host_are_refused():
    from perovdefect.structures.distortions import distort_defect
    (rec,) = build_defects("CsPbBr3-cubic", names="V_Br", charges=(0,),
                           min_image_distance_A=12.0)
    with pytest.raises(StructureError, match="not a vacancy of the host supercell"):
        distort_defect(rec, build_host("CsPbBr3-cubic", 9.0))
