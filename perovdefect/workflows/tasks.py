"""FireWorks Firetasks: one ladder step, and the level analysis of a model's defects."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fireworks import FiretaskBase, FWAction, explicit_serialize

from perovdefect.calcs.protocol import Protocol
from perovdefect.structures.record import StructureRecord


def record_to_dict(record: StructureRecord) -> dict:
    from perovdefect.structures.record import _jsonable
    return {"symbols": record.atoms.get_chemical_symbols(),
            "positions_A": record.atoms.positions.tolist(),
            "cell_A": record.atoms.cell.array.tolist(), "pbc": record.atoms.pbc.tolist(),
            "metadata": _jsonable(record.metadata)}


def record_from_dict(d: dict) -> StructureRecord:
    from ase import Atoms
    atoms = Atoms(d["symbols"], positions=d["positions_A"], cell=d["cell_A"], pbc=d["pbc"])
    return StructureRecord(atoms, dict(d["metadata"]))


@explicit_serialize
class RunStepTask(FiretaskBase):
    """Run one step (structure + protocol + code) in its run directory.

    A relax step hands its relaxed structure to the children through update_spec; every step
    pushes its result path to the analysis Firework (mod_spec _push)."""

    required_params = ["structure", "protocol", "code", "run_dir", "info"]
    optional_params = ["pseudopotentials"]

    def run_task(self, fw_spec):
        from perovdefect.workflows.runners import run_step
        record = record_from_dict(self["structure"])
        relaxed_key = f"relaxed_{self['info']['label']}"
        if relaxed_key in fw_spec:
            record = record_from_dict(fw_spec[relaxed_key])
        protocol = Protocol.from_dict(self["protocol"])
        env = dict(fw_spec.get("_fw_env", {}) or {})
        run_dir = Path(self["run_dir"])
        doc, skipped = run_step(record, protocol, self["code"], run_dir, env,
                                self.get("pseudopotentials"))
        info = dict(self["info"])
        # update_spec reaches direct children only: pass an inherited relaxed structure on, so
        # the static, hybrid and SOC steps further down the chain all get it
        update = {relaxed_key: fw_spec[relaxed_key]} if relaxed_key in fw_spec else {}
        if protocol.task == "relax":
            relaxed = _relaxed_record(record, run_dir)
            if relaxed is not None:
                update[relaxed_key] = record_to_dict(relaxed)
        pushed = {**info, "path": str(run_dir / "result.json")}
        return FWAction(stored_data={**info, "gap_eV": doc.gap_eV, "skipped": skipped,
                                     "result": str(run_dir / "result.json")},
                        update_spec=update, mod_spec=[{"_push": {"perovdefect_results": pushed}}])


def _relaxed_record(record: StructureRecord, run_dir: Path) -> StructureRecord | None:
    import ase.io
    for name, fmt in (("relaxed.extxyz", "extxyz"), ("CONTCAR", "vasp")):
        if (run_dir / name).is_file():
            atoms = ase.io.read(run_dir / name, format=fmt)
            atoms.pbc = record.atoms.pbc
            atoms.info = {}
            return StructureRecord(atoms, dict(record.metadata))
    return None


@explicit_serialize
class AnalyzeLevelsTask(FiretaskBase):
    """In-gap states of every defect charge state of a model against its host, at the final
    step of the ladder; writes RUN_DIR/analysis.json."""

    required_params = ["run_dir", "info", "final_step"]
    optional_params = ["pl_nm"]

    def run_task(self, fw_spec):
        from perovdefect.workflows.analysis import analyze_model
        results = fw_spec.get("perovdefect_results", [])
        out = analyze_model(results, self["final_step"], self.get("pl_nm"))
        out.update(self["info"])
        run_dir = Path(self["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / "analysis.json.tmp"
        tmp.write_text(json.dumps(out, indent=1))
        os.replace(tmp, run_dir / "analysis.json")
        return FWAction(stored_data={"analysis": str(run_dir / "analysis.json"),
                                     "n_in_gap": {k: len(v["in_gap_states"])
                                                  for k, v in out["defects"].items()}})
