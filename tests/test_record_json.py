"""Issue 20: the structure record's one JSON form (StructureRecord.to_dict / from_dict), used by
structure files and by the Firework specs of campaigns, and the layout older specs hold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from perovdefect.errors import StructureError
from perovdefect.structures import build_vacancies, read_structure
from perovdefect.structures.record import StructureRecord


def awkward_record() -> StructureRecord:
    """Positions and cell with no short decimal form, mixed pbc, numpy metadata."""
    rng = np.random.default_rng(20)
    atoms = Atoms(["Cs", "Pb", "Br", "Br"], positions=rng.uniform(0, 6, (4, 3)),
                  cell=np.diag([6.1, 6.2, 6.3]) + rng.uniform(-0.3, 0.3, (3, 3)),
                  pbc=[True, False, True])
    meta = {"name": "V_Br^+1", "charge": np.int64(1), "image_distance_A": np.float64(1 / 3),
            "site_frac_coords": np.array([0.5, 1 / 7, 0.25]), "pair": (1, 2),
            "spin": np.bool_(False), "nested": {"a": [np.float32(0.5), None, "x"]}}
    return StructureRecord(atoms, meta)


EXPECTED_METADATA = {"name": "V_Br^+1", "charge": 1, "image_distance_A": 1 / 3,
                     "site_frac_coords": [0.5, 1 / 7, 0.25], "pair": [1, 2], "spin": False,
                     "nested": {"a": [0.5, None, "x"]}}


def assert_same(a: StructureRecord, b: StructureRecord) -> None:
    assert a.atoms.get_chemical_symbols() == b.atoms.get_chemical_symbols()
    assert np.array_equal(a.atoms.positions, b.atoms.positions)  # bit for bit
    assert np.array_equal(a.atoms.cell.array, b.atoms.cell.array)
    assert a.atoms.pbc.tolist() == b.atoms.pbc.tolist()


def test_json_round_trip_is_exact():
    rec = awkward_record()
    d = json.loads(json.dumps(rec.to_dict()))
    assert sorted(d) == ["cell_A", "metadata", "pbc", "positions_A", "symbols"]
    back = StructureRecord.from_dict(d)
    assert_same(back, rec)
    assert back.metadata == EXPECTED_METADATA
    assert type(back.metadata["charge"]) is int and type(back.metadata["spin"]) is bool
    assert back.to_dict() == d  # a fixed point
    back.metadata["nested"]["a"].append(1)  # the record owns its metadata
    assert d["metadata"]["nested"]["a"] == [0.5, None, "x"]


def test_structure_file_and_firework_spec_share_the_form(tmp_path):
    from fireworks import Firework

    from perovdefect.workflows.tasks import RunStepTask, record_from_dict, record_to_dict
    rec = build_vacancies("CsPbBr3-cubic", 6.0, charges=(1,))[0]
    path = rec.write(tmp_path / "v.json")
    assert json.loads(path.read_text()) == json.loads(json.dumps(rec.to_dict()))
    assert_same(read_structure(path), rec)
    assert read_structure(path).metadata == json.loads(path.read_text())["metadata"]
    # through a Firework spec as the LaunchPad stores it (JSON)
    fw = Firework(RunStepTask(structure=record_to_dict(rec), protocol={}, code="c",
                              run_dir="x", info={}))
    stored = Firework.from_dict(json.loads(json.dumps(fw.to_dict())))
    back = record_from_dict(stored.tasks[0]["structure"])
    assert_same(back, rec)
    assert back.metadata == json.loads(path.read_text())["metadata"]


def test_the_layout_older_specs_and_files_hold_still_loads(tmp_path):
    """A structure as campaigns before the one form stored it in their LaunchPad specs (and as
    older `build` runs wrote .json files, metadata first)."""
    old = {"metadata": {"name": "CsPbBr3", "kind": "crystal", "charge": 0},
           "symbols": ["Cs", "Pb", "Br", "Br", "Br"],
           "positions_A": [[0.0, 0.0, 0.0], [2.95, 2.95, 2.95], [2.95, 2.95, 0.0],
                           [2.95, 0.0, 2.95], [0.0, 2.95, 2.95]],
           "cell_A": [[5.9, 0.0, 0.0], [0.0, 5.9, 0.0], [0.0, 0.0, 5.9]],
           "pbc": [True, True, True]}
    rec = StructureRecord.from_dict(old)
    assert rec.atoms.get_chemical_formula() == "Br3CsPb" and rec.charge == 0
    assert rec.atoms.get_volume() == pytest.approx(5.9 ** 3)
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert read_structure(tmp_path / "old.json").to_dict() == rec.to_dict()


def test_bad_records_are_refused_with_their_source(tmp_path):
    good = awkward_record().to_dict()
    with pytest.raises(StructureError, match=r"spec x: structure record lacks \['cell_A'\]"):
        StructureRecord.from_dict({k: v for k, v in good.items() if k != "cell_A"}, "spec x")
    with pytest.raises(StructureError, match="bad structure record"):
        StructureRecord.from_dict({**good, "symbols": ["Cs", "Xx", "Br", "Br"]})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**good, "positions_A": [[0, 0, 0]]}))
    with pytest.raises(StructureError, match=str(path)):
        read_structure(path)
    rec = awkward_record()
    rec.metadata["source"] = Path("/somewhere")
    with pytest.raises(StructureError, match=r"metadata\['source'\] holds a PosixPath"):
        rec.to_dict()
    with pytest.raises(StructureError, match="no JSON form"):
        rec.write(tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
