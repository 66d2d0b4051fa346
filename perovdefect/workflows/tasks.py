"""FireWorks Firetasks: one ladder step, the level analysis of a model's defects, the hosts'
chemical-potential limits from the competing phases, and a luminescence calculation."""

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


@explicit_serialize
class CompetingPhasesTask(FiretaskBase):
    """Chemical-potential limits of each host from the total energies of the competing phases at
    one step; writes RUN_DIR/thermodynamics.json (a CompetingPhases document)."""

    required_params = ["run_dir", "info", "step", "hosts"]
    optional_params = ["rich_element"]

    def run_task(self, fw_spec):
        from perovdefect.calcs.document import ElectronicStructure
        from perovdefect.thermo.calculations import limits_from_calculations
        docs = [ElectronicStructure.from_json(r["path"])
                for r in fw_spec.get("perovdefect_results", []) if r["step"] == self["step"]]
        out = limits_from_calculations(docs, self["hosts"], self.get("rich_element") or "Br")
        run_dir = Path(self["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        out.to_json(run_dir / "thermodynamics.json", indent=1)
        return FWAction(stored_data={"thermodynamics": str(run_dir / "thermodynamics.json"),
                                     "stable": {h: s.stable for h, s in out.stability.items()}})


@explicit_serialize
class LuminescenceTask(FiretaskBase):
    """A DeltaSCF luminescence calculation (perovdefect.optics.run.run_luminescence) of one
    structure with the campaign's backend; writes RUN_DIR/luminescence.json."""

    required_params = ["structure", "code", "physics", "run_dir", "info", "excitation"]
    optional_params = ["settings", "temperature_K", "broadening_fwhm_meV", "pl_nm", "pl_fwhm_nm"]

    def run_task(self, fw_spec):
        from perovdefect.calcs.backend import get_backend
        from perovdefect.optics.run import run_luminescence
        backend = get_backend(self["code"], **(self.get("settings") or {}))
        result = run_luminescence(
            record_from_dict(self["structure"]), backend, self["run_dir"], self["excitation"],
            temperature_K=self.get("temperature_K", 295.0),
            broadening_fwhm_meV=self.get("broadening_fwhm_meV", 20.0),
            measured_peak_nm=self.get("pl_nm"), measured_fwhm_nm=self.get("pl_fwhm_nm"),
            resources=dict(fw_spec.get("_fw_env", {}) or {}), log=lambda m: None,
            **self["physics"])
        return FWAction(stored_data={**self["info"], "luminescence": str(
            Path(self["run_dir"]) / "luminescence.json"), **result.summary()})
