"""FireWorks Firetasks: one ladder step, the level analysis of a model's defects, the hosts'
chemical-potential limits from the competing phases, and a luminescence calculation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from fireworks import FiretaskBase, FWAction, explicit_serialize

from perovdefect.calcs.protocol import Protocol
from perovdefect.errors import CampaignError
from perovdefect.structures.record import StructureRecord

if TYPE_CHECKING:
    from perovdefect.workflows.table import CampaignTable


class StepKind:
    """What a campaign Firework's task is to the rest of the campaign: its step name (None: a
    ladder step, named by its protocol), the file whose presence says its work is on disk, and
    how `campaign collect` reads it into the typed table. Each Firetask declares these, so a
    new kind of step is one class (no step names or result files spread over the workflow)."""

    STEP: ClassVar[str | None] = None
    DONE_FILE: ClassVar[str] = "step.json"

    @classmethod
    def collect_into(cls, table: CampaignTable, info: dict, fw: dict, run_dir: Path | None,
                     docs: dict) -> None:
        """Add this step's finished result to `table` (docs: run dir -> ElectronicStructure,
        for the ladder steps); called only when DONE_FILE exists."""
        raise NotImplementedError


def step_kind(step: str) -> type[StepKind]:
    """The step kind of a campaign step name: the Firetask class (or, for the luminescence
    routes, their common base) that declares it; every other name is a ladder step."""
    kinds = {k.STEP: k for k in (AnalyzeLevelsTask, CompetingPhasesTask, LuminescenceStep,
                                 GroundStateTask)}
    return kinds.get(step, RunStepTask)


# a structure in a Firework spec is the record's one JSON form (StructureRecord.to_dict)
record_to_dict = StructureRecord.to_dict
record_from_dict = StructureRecord.from_dict


@explicit_serialize
class RunStepTask(StepKind, FiretaskBase):
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

    #: what a step row copies from the step's ElectronicStructure summary
    ROW_FIELDS: ClassVar[tuple[str, ...]] = ("code", "functional", "soc", "converged", "gap_eV",
                                              "vbm_eV", "cbm_eV", "n_electrons",
                                              "total_energy_eV")

    @classmethod
    def collect_into(cls, table, info, fw, run_dir, docs) -> None:
        from perovdefect.calcs.document import ElectronicStructure
        from perovdefect.workflows.table import StepRow, defect_of
        row = StepRow(**{k: info[k] for k in ("campaign", "model", "label", "role", "charge",
                                              "step")},
                      state=fw["state"], fw_id=fw["fw_id"],
                      run_dir=str(run_dir) if run_dir is not None else None,
                      defect=defect_of(info["label"]) if info["role"] == "defect" else None,
                      sites_per_cell=info.get("sites_per_cell"))
        if run_dir is not None and (run_dir / cls.DONE_FILE).is_file() and \
                (run_dir / "result.json").is_file():
            doc = docs[str(run_dir)] = ElectronicStructure.from_json(run_dir / "result.json")
            summary = doc.summary()
            for k in cls.ROW_FIELDS:
                setattr(row, k, summary.get(k))
            row.custodian_corrections = doc.settings.get("custodian_corrections")
            row.theory = doc.theory
            row.wall_time_s = doc.settings.get("wall_time_s")
        table.steps.append(row)


@explicit_serialize
class AnalyzeLevelsTask(StepKind, FiretaskBase):
    """In-gap states of every defect charge state of a model against its host, at the final
    step of the ladder; writes RUN_DIR/analysis.json (a ModelAnalysis document)."""

    STEP = "analysis"
    DONE_FILE = "analysis.json"

    @classmethod
    def collect_into(cls, table, info, fw, run_dir, docs) -> None:
        from perovdefect.levels.model import ModelAnalysis
        table.analyses.append(ModelAnalysis.from_json(run_dir / cls.DONE_FILE))

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
class CompetingPhasesTask(StepKind, FiretaskBase):
    """Chemical-potential limits of each host from the total energies of the competing phases at
    one step; writes RUN_DIR/thermodynamics.json (a CompetingPhases document)."""

    STEP = "thermodynamics"
    DONE_FILE = "thermodynamics.json"

    @classmethod
    def collect_into(cls, table, info, fw, run_dir, docs) -> None:
        from perovdefect.thermo.documents import CompetingPhases
        table.thermodynamics[info["campaign"]] = CompetingPhases.from_json(
            run_dir / cls.DONE_FILE)

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
class GroundStateTask(StepKind, FiretaskBase):
    """The ground-state search of one defect: the relaxed energies of its distorted starts
    (each a relax Firework, a parent of this one), the chosen structure (ShakeNBreak's rule,
    perovdefect.thermo.ground_state) handed to the rest of the defect's ladder, and any
    reconstruction named from the final bonds; writes RUN_DIR/ground_state.json."""

    STEP = "ground_state"
    DONE_FILE = "ground_state.json"
    required_params = ["run_dir", "info", "starts", "defect_position_A"]

    def run_task(self, fw_spec):
        from perovdefect.calcs.document import ElectronicStructure
        from perovdefect.structures.reconstructions import reconstruction_name
        from perovdefect.thermo.ground_state import DistortionResult, choose_ground_state
        info, results, relaxed = self["info"], [], {}
        for start in self["starts"]:
            result_file = Path(start["run_dir"]) / "result.json"
            rec = fw_spec.get(f"relaxed_{start['label']}")
            doc = ElectronicStructure.from_json(result_file) if result_file.is_file() else None
            if rec is not None:
                relaxed[start["distortion"]] = rec
            results.append(DistortionResult(
                distortion=start["distortion"], bond_distortion=start.get("bond_distortion"),
                num_distorted_neighbours=start.get("num_distorted_neighbours"),
                energy_eV=None if doc is None or rec is None else doc.total_energy_eV,
                converged=None if doc is None else doc.converged, run_dir=start["run_dir"],
                reconstruction=None if rec is None else reconstruction_name(
                    record_from_dict(rec).atoms, self["defect_position_A"])))
        out = choose_ground_state(info["label"], info["charge"], results,
                                  campaign=info["campaign"], model=info["model"])
        run_dir = Path(self["run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        out.to_json(run_dir / self.DONE_FILE, indent=1)
        return FWAction(stored_data={"ground_state": out.lowest,
                                     "energy_lowering_eV": out.energy_lowering_eV},
                        update_spec={f"relaxed_{info['label']}": relaxed[out.lowest]})

    @classmethod
    def collect_into(cls, table, info, fw, run_dir, docs) -> None:
        from perovdefect.thermo.ground_state import GroundStateSearch
        table.ground_states.append(GroundStateSearch.from_json(run_dir / cls.DONE_FILE))


class LuminescenceStep(StepKind):
    """A luminescence calculation of either route: RUN_DIR/luminescence.json."""

    STEP = "luminescence"
    DONE_FILE = "luminescence.json"

    @classmethod
    def collect_into(cls, table, info, fw, run_dir, docs) -> None:
        from perovdefect.optics.run import LuminescenceResult
        from perovdefect.workflows.table import LuminescenceRow
        table.luminescence.append(LuminescenceRow(
            campaign=info["campaign"], model=info["model"],
            defect=info.get("defect") or info["label"], run_dir=str(run_dir),
            result=LuminescenceResult.from_json(run_dir / cls.DONE_FILE)))


def searched_record(fw_spec: dict, key: str | None, built: dict, run_dir: str
                    ) -> StructureRecord:
    """The structure a defect's ground-state search handed on in fw_spec[key] (its
    GroundStateTask's `relaxed_LABEL`), or the `built` record where no search ran (key None).
    A search that handed nothing on is a CampaignError naming RUN_DIR, never the built cell."""
    if key is None:
        return record_from_dict(built)
    if key not in fw_spec:
        raise CampaignError(f"{run_dir}: the ground-state search handed on no structure "
                            f"({key} missing from the Firework's spec)")
    return record_from_dict(fw_spec[key])


@explicit_serialize
class LuminescenceTask(LuminescenceStep, FiretaskBase):
    """A DeltaSCF luminescence calculation (perovdefect.optics.run.run_luminescence) of one
    structure with the campaign's backend; writes RUN_DIR/luminescence.json."""

    required_params = ["structure", "code", "physics", "run_dir", "info", "excitation"]
    optional_params = ["settings", "temperature_K", "broadening_fwhm_meV", "pl_nm", "pl_fwhm_nm",
                       "hybrid", "hybrid_settings", "hybrid_physics", "start_from"]

    def start_record(self, fw_spec: dict):
        """The starting structure: the one the defect's ground-state search chose (handed on
        in fw_spec[start_from] by its GroundStateTask) where the campaign searched, else the
        built defect. A search that handed nothing on is an error, not a silent fallback."""
        return searched_record(fw_spec, self.get("start_from"), self["structure"],
                               self["run_dir"])

    def run_task(self, fw_spec):
        from perovdefect.calcs.backend import get_backend
        from perovdefect.optics.run import run_luminescence
        backend = get_backend(self["code"], **(self.get("settings") or {}))
        hybrid = self.get("hybrid")
        result = run_luminescence(
            self.start_record(fw_spec), backend, self["run_dir"], self["excitation"],
            hybrid=hybrid, hybrid_backend=get_backend(self["code"], **self["hybrid_settings"])
            if hybrid else None,
            hybrid_cutoff_eV=(self.get("hybrid_physics") or {}).get("cutoff_eV"),
            temperature_K=self.get("temperature_K", 295.0),
            broadening_fwhm_meV=self.get("broadening_fwhm_meV", 20.0),
            measured_peak_nm=self.get("pl_nm"), measured_fwhm_nm=self.get("pl_fwhm_nm"),
            resources=dict(fw_spec.get("_fw_env", {}) or {}), log=lambda m: None,
            **self["physics"])
        start = "the ground-state search's choice" if self.get("start_from") else "as built"
        return FWAction(stored_data={**self["info"], "luminescence": str(
            Path(self["run_dir"]) / "luminescence.json"), "start_structure": start,
            **result.summary()})
