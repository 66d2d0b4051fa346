"""Campaign -> FireWorks workflows: per model, the host and each V_Br charge state through the
ladder (a chain of Fireworks), one analysis Firework once all of them are done and, with a
`luminescence:` block, the DeltaSCF luminescence calculation of its neutral V_Br; with a
`thermodynamics:` block, one more workflow: every competing phase through the ladder up to the
total-energy step and one Firework computing the hosts' chemical-potential limits."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fireworks import Firework, Workflow

from perovdefect.calcs.protocol import ladder
from perovdefect.structures import build_cluster, build_vacancies
from perovdefect.structures.record import StructureRecord
from perovdefect.structures.vacancies import build_host
from perovdefect.workflows.spec import CampaignSpec, ModelSpec
from perovdefect.workflows.tasks import (AnalyzeLevelsTask, CompetingPhasesTask, LuminescenceTask,
                                         RunStepTask, record_to_dict)

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
            kw_q = dict(kw, charge=host.charge + q)  # q relative to removing a neutral Br atom
            rec = build_cluster(model.cluster, vacancy=True, **kw_q)
            defects.append((f"V_Br_q{q:+d}" if q else "V_Br_q0", rec))
        return host, defects
    # the same primitive-cell supercell build_vacancies removes the site from
    host = build_host(model.compound, model.min_image_distance_A, model.target_atoms,
                      model.lattice)
    recs = build_vacancies(model.compound, model.min_image_distance_A, model.target_atoms,
                           tuple(model.charges), model.lattice)
    return host, [(r.name, r) for r in recs]


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]


def model_key(spec: CampaignSpec, model: ModelSpec) -> str:
    """Identity of a model's workflow: the same campaign settings never submit twice."""
    payload = {"code": spec.code, "tier": spec.tier, "relax": spec.relax,
               "protocol": spec.protocol, "model": model.model_dump(), "settings": spec.settings}
    if model in spec.luminescence_models():  # what this model's luminescence Firework runs
        payload["luminescence"] = {**spec.luminescence.key_payload(), "pl_nm": spec.pl_nm}
    return f"{spec.name}/{model.label}/{_digest(payload)}"


def thermo_key(spec: CampaignSpec) -> str:
    """Identity of the competing-phase workflow."""
    # correction and dielectric are applied by `campaign collect`, not run: not part of it
    payload = {"code": spec.code, "tier": spec.tier, "protocol": spec.protocol,
               "settings": spec.settings, "thermodynamics": spec.thermodynamics.model_dump(
                   exclude={"correction", "dielectric"})}
    return f"{spec.name}/{THERMO_LABEL}/{_digest(payload)}"


def _chain(spec: CampaignSpec, steps, rec: StructureRecord, base: Path, label: str, role: str,
           charge: int, key: str, model_label: str, settings: dict) -> list[Firework]:
    """One structure through its steps: a chain of RunStepTask Fireworks."""
    fws: list[Firework] = []
    parent = previous = None
    for protocol in steps:
        info = {"campaign": spec.name, "model": model_label, "label": label, "role": role,
                "charge": charge, "step": protocol.name, "key": key}
        run_dir = str(base / label / protocol.name)
        # `previous`: the last step's directory on the same structure, which a backend may
        # reuse (a ground state); never after a relaxation (the geometry changed)
        task = RunStepTask(structure=record_to_dict(rec), protocol=protocol.as_dict(),
                           code=spec.code, settings=settings, run_dir=run_dir, info=info,
                           previous=previous)
        previous = run_dir if protocol.task == "static" else None
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
    for role, label, rec in [("host", "host", host)] + [("defect", lab, r) for lab, r in defects]:
        steps = ladder(spec.tier, charge=rec.charge, relax=spec.relax, **spec.protocol)
        final_step = steps[-1].name
        chain = _chain(spec, steps, rec, base, label, role,
                       rec.charge - host.charge if role == "defect" else 0, key, model.label,
                       spec.settings)
        fws += chain
        last.append(chain[-1])
    info = {"campaign": spec.name, "model": model.label, "label": "analysis", "role": "analysis",
            "charge": 0, "step": "analysis", "key": key}
    analysis = Firework([AnalyzeLevelsTask(run_dir=str(base / "analysis"), info=info,
                                           final_step=final_step, pl_nm=spec.pl_nm)],
                        name=f"{spec.name}/{model.label}/analysis",
                        spec={"_perovdefect": info, "perovdefect_results": []}, parents=last)
    fws.append(analysis)
    if model in spec.luminescence_models() and spec.luminescence.route == "charge":
        from perovdefect.workflows.charge_task import charge_luminescence_fws
        fws += charge_luminescence_fws(spec, model, host, defects, base, key)
    elif model in spec.luminescence_models():
        neutral = [(label, rec) for label, rec in defects if rec.charge == host.charge]
        for label, rec in neutral:  # one per symmetry-distinct site
            run_dir = base / "luminescence" if len(neutral) == 1 else base / label / \
                "luminescence"
            fws.append(_luminescence_fw(spec, model, label, rec, run_dir, key))
    return Workflow(fws, name=f"{spec.name}/{model.label}",
                    metadata={"perovdefect_campaign": spec.name, "perovdefect_key": key,
                              "perovdefect_hash": spec.content_hash()})


def _luminescence_fw(spec: CampaignSpec, model: ModelSpec, label: str, rec: StructureRecord,
                     run_dir: Path, key: str) -> Firework:
    """The DeltaSCF luminescence calculation of one neutral defect of the model (independent of
    the ladder: it relaxes its own ground and excited states)."""
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
    suffix = "" if run_dir.parent.name == model.label else f"/{label}"
    return Firework([task], name=f"{spec.name}/{model.label}/luminescence{suffix}",
                    spec={"_perovdefect": info})
