"""Campaign -> FireWorks workflows: per model, the host and each V_Br charge state through the
ladder (a chain of Fireworks), and one analysis Firework once all of them are done."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fireworks import Firework, Workflow

from perovdefect.calcs.protocol import ladder
from perovdefect.structures import build_cluster, build_crystal, build_supercell, build_vacancies
from perovdefect.structures.record import StructureRecord
from perovdefect.workflows.spec import CampaignSpec, ModelSpec
from perovdefect.workflows.tasks import AnalyzeLevelsTask, RunStepTask, record_to_dict


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
    crystal = build_crystal(model.compound, model.lattice)
    if model.min_image_distance_A or model.target_atoms:
        host = build_supercell(crystal, model.min_image_distance_A, model.target_atoms)
    else:
        host = crystal
    recs = build_vacancies(model.compound, model.min_image_distance_A, model.target_atoms,
                           tuple(model.charges), model.lattice)
    return host, [(r.name, r) for r in recs]


def model_key(spec: CampaignSpec, model: ModelSpec) -> str:
    """Identity of a model's workflow: the same campaign settings never submit twice."""
    payload = json.dumps({"code": spec.code, "tier": spec.tier, "relax": spec.relax,
                          "protocol": spec.protocol, "model": model.model_dump(),
                          "settings": spec.settings}, sort_keys=True)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    return f"{spec.name}/{model.label}/{digest}"


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
        parent = None
        previous = None
        for protocol in steps:
            info = {"campaign": spec.name, "model": model.label, "label": label, "role": role,
                    "charge": rec.charge - host.charge if role == "defect" else 0,
                    "step": protocol.name, "key": key}
            run_dir = str(base / label / protocol.name)
            # `previous`: the last step's directory on the same structure, which a backend
            # may reuse (a ground state); never after a relaxation (the geometry changed)
            task = RunStepTask(structure=record_to_dict(rec), protocol=protocol.as_dict(),
                               code=spec.code, settings=spec.settings, run_dir=run_dir,
                               info=info, previous=previous)
            previous = run_dir if protocol.task == "static" else None
            fw = Firework([task], name=f"{spec.name}/{model.label}/{label}/{protocol.name}",
                          spec={"_perovdefect": info}, parents=[parent] if parent else None)
            fws.append(fw)
            parent = fw
        last.append(parent)
    info = {"campaign": spec.name, "model": model.label, "label": "analysis", "role": "analysis",
            "charge": 0, "step": "analysis", "key": key}
    analysis = Firework([AnalyzeLevelsTask(run_dir=str(base / "analysis"), info=info,
                                           final_step=final_step, pl_nm=spec.pl_nm)],
                        name=f"{spec.name}/{model.label}/analysis",
                        spec={"_perovdefect": info, "perovdefect_results": []}, parents=last)
    fws.append(analysis)
    return Workflow(fws, name=f"{spec.name}/{model.label}",
                    metadata={"perovdefect_campaign": spec.name, "perovdefect_key": key,
                              "perovdefect_hash": spec.content_hash()})
