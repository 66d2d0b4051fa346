"""FireWorks Firetasks: one ladder step, and the level analysis of a model's defects."""

from __future__ import annotations

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
    """Run one step (structure + protocol) with the campaign's backend in its run directory.

    The backend is looked up by name in the registry; resources (executables, cores) come from
    the FireWorker's env. A relax step hands its relaxed structure to the children through
    update_spec; every step pushes its result path to the analysis Firework (mod_spec _push)."""

    required_params = ["structure", "protocol", "code", "run_dir", "info"]
    optional_params = ["settings", "previous"]

    def run_task(self, fw_spec):
        from perovdefect.calcs.backend import get_backend
        record = record_from_dict(self["structure"])
        relaxed_key = f"relaxed_{self['info']['label']}"
        if relaxed_key in fw_spec:
            record = record_from_dict(fw_spec[relaxed_key])
        protocol = Protocol.from_dict(self["protocol"])
        backend = get_backend(self["code"], **(self.get("settings") or {}))
        resources = dict(fw_spec.get("_fw_env", {}) or {})
        run_dir = Path(self["run_dir"])
        doc, skipped = backend.execute(record, protocol, run_dir, resources,
                                       self.get("previous"))
        info = dict(self["info"])
        # update_spec reaches direct children only: pass an inherited relaxed structure on, so
        # the static, hybrid and SOC steps further down the chain all get it
        update = {relaxed_key: fw_spec[relaxed_key]} if relaxed_key in fw_spec else {}
        if protocol.task == "relax":
            relaxed = backend.relaxed_structure(run_dir, record)
            if relaxed is not None:
                update[relaxed_key] = record_to_dict(relaxed)
        pushed = {**info, "path": str(run_dir / "result.json")}
        return FWAction(stored_data={**info, "gap_eV": doc.gap_eV, "skipped": skipped,
                                     "result": str(run_dir / "result.json")},
                        update_spec=update, mod_spec=[{"_push": {"perovdefect_results": pushed}}])


@explicit_serialize
class AnalyzeLevelsTask(FiretaskBase):
    """In-gap states of every defect charge state of a model against its host, at the final
    step of the ladder; writes RUN_DIR/analysis.json (a ModelAnalysis document)."""

    required_params = ["run_dir", "info", "final_step"]
    optional_params = ["pl_nm"]

    def run_task(self, fw_spec):
        from perovdefect.levels.model import analyze_model
        results = fw_spec.get("perovdefect_results", [])
        info = self["info"]
        out = analyze_model(results, self["final_step"], self.get("pl_nm"),
                            campaign=info.get("campaign"), model=info.get("model"))
        run_dir = Path(self["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        out.to_json(run_dir / "analysis.json", indent=1)
        return FWAction(stored_data={"analysis": str(run_dir / "analysis.json"),
                                     "n_in_gap": {k: len(v.in_gap_states)
                                                  for k, v in out.defects.items()}})
