"""Campaign -> FireWorks workflows: per model, the host and each defect's charge states through
the ladder (a chain of Fireworks; with `ground_state_search:` the first relaxation from each of
ShakeNBreak's starts, the lowest carried on), one analysis Firework once all of them are done
and, with a `luminescence:` block, the DeltaSCF luminescence calculation of its neutral defects; with a
`thermodynamics:` block, one more workflow: every competing phase through the ladder up to the
total-energy step and one Firework computing the hosts' chemical-potential limits."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fireworks import Firework, Workflow

from perovdefect.calcs.protocol import ladder
from perovdefect.errors import CampaignError
from perovdefect.structures import build_cluster
from perovdefect.structures.defects import build_defects, defect_name
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.vacancies import build_host
from perovdefect.workflows.spec import CampaignSpec, ModelSpec
from perovdefect.workflows.tasks import (AnalyzeLevelsTask, CompetingPhasesTask, GroundStateTask,
                                         LuminescenceTask, RunStepTask, record_to_dict)

THERMO_LABEL = "thermodynamics"


def model_records(model: ModelSpec) -> tuple[StructureRecord, list[tuple[str, StructureRecord]]]:
    """(host, [(label, defect record)]) for one model spec."""
    if model.model == "cluster":
        kw: dict = {"padding_A": model.padding_A, "lattice": model.lattice}
        if model.cluster == "crystal-cutout":
            kw.update(compound=model.compound, radius_A=model.radius_A)
        if model.host_charge is not None:
            kw["charge"] = model.host_charge
        host = build_cluster(model.cluster, vacancy=False, **kw)
        defects = []
        for q in model.charges:
            kw_q = dict(kw, charge=host.charge + q)  # q relative to removing a neutral atom
            rec = build_cluster(model.cluster, vacancy=True, **kw_q)
            defects.append((defect_name(rec.metadata["defect"], q), rec))
        return host, defects
    # the same primitive-cell supercell every defect builder makes its defect in
    host = build_host(model.compound, model.min_image_distance_A, model.target_atoms,
                      model.lattice)
    # pymatgen-analysis-defects' generators, only the families named (V_Br: the same cells,
    # names and sites as build_vacancies, tests/test_native_defects.py)
    recs = build_defects(model.compound, _families(model.defects), model.defects,
                         model.min_image_distance_A, model.target_atoms, tuple(model.charges),
                         model.lattice)
    return host, [(r.name, r) for r in recs]


def _families(names: list[str]) -> list[str]:
    """The generator families a list of defect names needs (V_X: vacancies, X_i:
    interstitials, X_Y: antisites), so that no unneeded (slow) generator runs."""
    return sorted({"vacancies" if n.startswith("V_") else
                   "interstitials" if n.split("_")[1] == "i" else "antisites" for n in names})


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def model_key(spec: CampaignSpec, model: ModelSpec) -> str:
    """Identity of a model's workflow: the same campaign settings never submit twice."""
    payload = {"code": spec.code, "tier": spec.tier, "relax": spec.relax,
               "protocol": spec.protocol, "model": model.model_dump(), "settings": spec.settings}
    if spec.ground_state_search is not None and model.model == "supercell":
        payload["ground_state_search"] = spec.ground_state_search.model_dump()
    if model in spec.luminescence_models():  # what this model's luminescence Firework runs
        payload["luminescence"] = {**spec.luminescence.key_payload(), "pl_nm": spec.pl_nm}
    return f"{spec.name}/{model.label}/{_digest(payload)}"


def thermo_key(spec: CampaignSpec) -> str:
    """Identity of the competing-phase workflow."""
    # what `campaign collect` applies (correction, dielectric, temperatures, the host's shift
    # onto the hull) is not run: not part of it
    payload = {"code": spec.code, "tier": spec.tier, "protocol": spec.protocol,
               "settings": spec.settings, "thermodynamics": spec.thermodynamics.model_dump(
                   exclude={"correction", "dielectric", "temperature_K", "quench_temperature_K",
                            "max_host_above_hull_meV_per_atom"})}
    return f"{spec.name}/{THERMO_LABEL}/{_digest(payload)}"


def _chain(spec: CampaignSpec, steps, rec: StructureRecord, base: Path, label: str, role: str,
           charge: int, key: str, model_label: str, settings: dict,
           parent: Firework | None = None, run_dir: Path | None = None) -> list[Firework]:
    """One structure through its steps: a chain of RunStepTask Fireworks (after `parent` when
    given; in run_dir/STEP, default base/label/STEP)."""
    fws: list[Firework] = []
    previous = None
    for protocol in steps:
        info = {"campaign": spec.name, "model": model_label, "label": label, "role": role,
                "charge": charge, "step": protocol.name, "key": key}
        if role == "defect" and rec.metadata.get("supercell_multiplicity"):
            # equivalent sites of this defect per cell: the prefactor of its concentration
            info["sites_per_cell"] = float(rec.metadata["supercell_multiplicity"])
        step_dir = str((run_dir or base / label) / protocol.name)
        # `previous`: the last step's directory on the same structure, which a backend may
        # reuse (a ground state); never after a relaxation (the geometry changed)
        task = RunStepTask(structure=record_to_dict(rec), protocol=protocol.as_dict(),
                           code=spec.code, settings=settings, run_dir=step_dir, info=info,
                           previous=previous)
        previous = step_dir if protocol.task == "static" else None
        fw = Firework([task], name=f"{spec.name}/{model_label}/{label}/{protocol.name}",
                      spec={"_perovdefect": info}, parents=[parent] if parent else None)
        fws.append(fw)
        parent = fw
    return fws


def thermo_workflow(spec: CampaignSpec, runs_root: Path) -> Workflow:
    """Every competing phase through the ladder up to thermodynamics.step, then the limits."""
    from perovdefect.structures.phases import build_phase
    t = spec.thermodynamics
    key = thermo_key(spec)
    base = runs_root / spec.name / THERMO_LABEL
    settings = {**spec.settings, **t.settings}
    fws: list[Firework] = []
    last: list[Firework] = []
    for name in t.phases:
        rec = build_phase(name)
        chain = _chain(spec, spec.phase_ladder(not rec.is_cluster, name), rec, base, name,
                       "phase", 0, key, THERMO_LABEL, settings)
        fws += chain
        last.append(chain[-1])
    info = {"campaign": spec.name, "model": THERMO_LABEL, "label": "limits", "role": "analysis",
            "charge": 0, "step": THERMO_LABEL, "key": key}
    fws.append(Firework([CompetingPhasesTask(run_dir=str(base / "limits"), info=info,
                                             step=t.step, hosts=t.hosts,
                                             rich_element=t.rich_element)],
                        name=f"{spec.name}/{THERMO_LABEL}/limits",
                        spec={"_perovdefect": info, "perovdefect_results": []}, parents=last))
    return Workflow(fws, name=f"{spec.name}/{THERMO_LABEL}",
                    metadata={"perovdefect_campaign": spec.name, "perovdefect_key": key,
                              "perovdefect_hash": spec.content_hash()})


def model_workflow(spec: CampaignSpec, model: ModelSpec, runs_root: Path) -> Workflow:
    key = model_key(spec, model)
    host, defects = model_records(model)
    base = runs_root / spec.name / model.label
    fws: list[Firework] = []
    last: list[Firework] = []
    final_step = ""
    search = spec.ground_state_search is not None and model.model == "supercell"
    searches: dict[str, Firework] = {}  # defect label -> its ground-state choice
    for role, label, rec in [("host", "host", host)] + [("defect", lab, r) for lab, r in defects]:
        steps = ladder(spec.tier, charge=rec.charge, relax=spec.relax, **spec.protocol)
        final_step = steps[-1].name
        charge = rec.charge - host.charge if role == "defect" else 0
        parent = None
        if role == "defect" and search and _searched(spec, rec):
            # the distorted starts replace the first relaxation
            starts = _ground_state_fws(spec, model, host, label, rec, steps[0], base, key)
            fws += starts
            parent, steps = starts[-1], steps[1:]
            searches[label] = parent
        chain = _chain(spec, steps, rec, base, label, role, charge, key, model.label,
                       spec.settings, parent=parent)
        fws += chain
        last.append(chain[-1] if chain else parent)
    info = {"campaign": spec.name, "model": model.label, "label": "analysis", "role": "analysis",
            "charge": 0, "step": "analysis", "key": key}
    analysis = Firework([AnalyzeLevelsTask(run_dir=str(base / "analysis"), info=info,
                                           final_step=final_step, pl_nm=spec.pl_nm)],
                        name=f"{spec.name}/{model.label}/analysis",
                        spec={"_perovdefect": info, "perovdefect_results": []}, parents=last)
    fws.append(analysis)
    if model in spec.luminescence_models() and spec.luminescence.route == "charge":
        from perovdefect.workflows.charge_task import charge_luminescence_fws
        fws += charge_luminescence_fws(spec, model, host, defects, base, key, searches)
    elif model in spec.luminescence_models():
        neutral = [(label, rec) for label, rec in defects if rec.charge == host.charge]
        for label, rec in neutral:  # one per symmetry-distinct site
            run_dir = base / "luminescence" if len(neutral) == 1 else base / label / \
                "luminescence"
            fws.append(_luminescence_fw(spec, model, label, rec, run_dir, key,
                                        searches.get(label)))
    return Workflow(fws, name=f"{spec.name}/{model.label}",
                    metadata={"perovdefect_campaign": spec.name, "perovdefect_key": key,
                              "perovdefect_hash": spec.content_hash()})


def _searched(spec: CampaignSpec, rec: StructureRecord) -> bool:
    """Whether the ground-state search takes this defect (its `defects:` list, by species name
    or site label; every defect without one)."""
    names = spec.ground_state_search.defects
    return names is None or bool({rec.metadata.get("defect"),
                                  rec.metadata.get("defect_label")} & set(names))


def _ground_state_fws(spec: CampaignSpec, model: ModelSpec, host: StructureRecord, label: str,
                      rec: StructureRecord, relax, base: Path, key: str) -> list[Firework]:
    """ShakeNBreak's starts of one defect (perovdefect.structures.distortions), each relaxed
    by a RunStepTask Firework, then the GroundStateTask that picks the lowest: the last
    Firework of the list, whose chosen structure the rest of the ladder starts from."""
    from perovdefect.structures.defects import host_oxidation_states
    from perovdefect.structures.distortions import distort_defect
    gs = spec.ground_state_search
    if relax.task != "relax":
        raise CampaignError("ground_state_search needs the ladder to start with a relaxation")
    oxi = rec.metadata.get("oxidation_states") or host_oxidation_states(host)
    try:
        records = distort_defect(rec, host, oxidation_states=oxi,
                                 bond_distortions=gs.bond_distortions, dimer=gs.dimer,
                                 stdev_A=gs.stdev_A, seed=gs.seed)
    except ValueError as exc:  # ShakeNBreak's own geometry errors (ASE's, in its Dimer)
        raise CampaignError(f"ShakeNBreak cannot distort {label} in this {len(rec.atoms)}-atom "
                            f"cell ({exc}): a neighbour may be its own periodic image; use "
                            "a larger supercell or ground_state_search dimer: false") from None
    folder = base / label / "ground_state"
    charge = rec.charge - host.charge
    fws, starts = [], []
    for r in records:
        name = r.metadata["distortion"]
        # a FireWorks spec key (relaxed_LABEL) and a folder: no '.' (MongoDB keys) or '%'
        safe = re.sub(r"[^A-Za-z0-9_+-]", "", name.replace("%", "pct").replace(".", "p"))
        start_label = f"{label}@{safe}"
        fw = _chain(spec, [relax], r, base, start_label, "distortion", charge, key, model.label,
                    spec.settings, run_dir=folder / safe)[0]
        fws.append(fw)
        starts.append({"distortion": name, "label": start_label,
                       "run_dir": fw.tasks[0]["run_dir"],
                       "bond_distortion": r.metadata.get("bond_distortion"),
                       "num_distorted_neighbours": r.metadata.get("num_distorted_neighbours")})
    info = {"campaign": spec.name, "model": model.label, "label": label, "role": "analysis",
            "charge": charge, "step": GroundStateTask.STEP, "key": key}
    position = rec.metadata.get("defect_position_A") or rec.metadata.get("vacancy_position_A")
    task = GroundStateTask(run_dir=str(folder), info=info, starts=starts,
                           defect_position_A=[float(x) for x in position])
    fws.append(Firework([task], name=f"{spec.name}/{model.label}/{label}/ground_state",
                        spec={"_perovdefect": info}, parents=fws[:]))
    return fws


def _luminescence_fw(spec: CampaignSpec, model: ModelSpec, label: str, rec: StructureRecord,
                     run_dir: Path, key: str, search: Firework | None = None) -> Firework:
    """The DeltaSCF luminescence calculation of one neutral defect of the model (independent of
    the ladder: it relaxes its own ground and excited states), after the defect's ground-state
    search `search` where there is one: it then starts from the structure the search chose."""
    lum = spec.luminescence
    info = {"campaign": spec.name, "model": model.label, "label": "luminescence",
            "defect": label, "role": "luminescence", "charge": 0, "step": "luminescence",
            "key": key}
    physics = {**spec.luminescence_physics(), "charge": rec.charge}
    task = LuminescenceTask(structure=record_to_dict(rec), code=spec.code,
                            settings=spec.settings, physics=physics,
                            run_dir=str(run_dir), info=info,
                            excitation=lum.excitation, temperature_K=lum.temperature_K,
                            broadening_fwhm_meV=lum.broadening_fwhm_meV, pl_nm=spec.pl_nm,
                            pl_fwhm_nm=lum.pl_fwhm_nm)
    if lum.hybrid:  # only when asked: earlier campaigns' Fireworks stay as they were
        task.update(hybrid=lum.hybrid, hybrid_settings=spec.hybrid_backend_settings(),
                    hybrid_physics=spec.hybrid_physics())
    if search is not None:
        task.update(start_from=f"relaxed_{label}")
    suffix = "" if run_dir.parent.name == model.label else f"/{label}"
    return Firework([task], name=f"{spec.name}/{model.label}/luminescence{suffix}",
                    spec={"_perovdefect": info}, parents=[search] if search else None)
