"""The charge-state luminescence route in campaigns (`luminescence: {route: charge, charges:
[q_initial, q_final]}`): one Firework per symmetry-distinct vacancy of a supercell model,
running perovdefect.optics.charge_route with the campaign's backend (on the workers of a queue
under qlaunch, like every other step); with ground_state_search it waits for both charge
states' searches and starts each from the structure its own search chose."""

from __future__ import annotations

from pathlib import Path

from fireworks import Firework, FiretaskBase, FWAction, explicit_serialize

from perovdefect.structures.record import StructureRecord
from perovdefect.workflows.table import defect_of
from perovdefect.workflows.tasks import (LuminescenceStep, record_from_dict, record_to_dict,
                                         searched_record)


@explicit_serialize
class ChargeLuminescenceTask(LuminescenceStep, FiretaskBase):
    """The charge-state route of one vacancy (two charge states, the host's band edge);
    writes RUN_DIR/luminescence.json. start_from: {"initial"/"final": fw_spec key} of the
    charge states whose ground-state search handed on their structure."""

    required_params = ["initial", "final", "host", "code", "physics", "run_dir", "info"]
    optional_params = ["settings", "correction_eV", "temperature_K", "broadening_fwhm_meV",
                       "pl_nm", "pl_fwhm_nm", "start_from"]

    def start_records(self, fw_spec: dict) -> tuple[StructureRecord, StructureRecord]:
        """(initial, final): each charge state's structure as its ground-state search chose it
        (start_from: {"initial": fw_spec key, "final": ...}, the keys of the searched charge
        states), else as built."""
        keys = self.get("start_from") or {}
        return tuple(searched_record(fw_spec, keys.get(which), self[which], self["run_dir"])
                     for which in ("initial", "final"))

    def run_task(self, fw_spec):
        from perovdefect.calcs.backend import get_backend
        from perovdefect.optics.charge_route import run_charge_luminescence
        backend = get_backend(self["code"], **(self.get("settings") or {}))
        initial, final = self.start_records(fw_spec)
        result = run_charge_luminescence(
            initial, final, backend,
            self["run_dir"], host=record_from_dict(self["host"]),
            correction_eV=self.get("correction_eV"),
            correction_detail="given in the campaign" if self.get("correction_eV") is not None
            else "", temperature_K=self.get("temperature_K", 295.0),
            broadening_fwhm_meV=self.get("broadening_fwhm_meV", 20.0),
            measured_peak_nm=self.get("pl_nm"), measured_fwhm_nm=self.get("pl_fwhm_nm"),
            resources=dict(fw_spec.get("_fw_env", {}) or {}), log=lambda m: None,
            **self["physics"])
        searched = sorted((self.get("start_from") or {}).keys())
        return FWAction(stored_data={**self["info"], "luminescence": str(
            Path(self["run_dir"]) / "luminescence.json"),
            "start_structure": f"the ground-state search's choice ({', '.join(searched)})"
            if searched else "as built", **result.summary()})


def charge_luminescence_fws(spec, model, host: StructureRecord,
                            defects: list[tuple[str, StructureRecord]], base: Path,
                            key: str, searches: dict[str, Firework] | None = None
                            ) -> list[Firework]:
    """One ChargeLuminescenceTask Firework per vacancy site of `model` (spec.luminescence
    with route charge; its two charges are among the model's, CampaignSpec checked it); where
    a charge state's ground-state search Firework is in `searches` (by defect label), the
    Firework waits for it and starts that charge state from the structure it chose."""
    searches = searches or {}
    lum = spec.luminescence
    q_i, q_f = lum.charges
    sites: dict[str, dict[int, tuple[str, StructureRecord]]] = {}
    for label, rec in defects:
        sites.setdefault(defect_of(label), {})[rec.charge - host.charge] = (label, rec)
    fws = []
    for site, by_charge in sites.items():
        run_dir = base / "luminescence" if len(sites) == 1 else base / site / "luminescence"
        info = {"campaign": spec.name, "model": model.label, "label": "luminescence",
                "defect": site, "role": "luminescence", "charge": q_f, "step": "luminescence",
                "key": key}
        task = ChargeLuminescenceTask(
            initial=record_to_dict(by_charge[q_i][1]), final=record_to_dict(by_charge[q_f][1]),
            host=record_to_dict(host), code=spec.code, settings=spec.settings,
            physics=spec.luminescence_physics(), run_dir=str(run_dir), info=info,
            correction_eV=lum.correction_eV, temperature_K=lum.temperature_K,
            broadening_fwhm_meV=lum.broadening_fwhm_meV, pl_nm=spec.pl_nm,
            pl_fwhm_nm=lum.pl_fwhm_nm)
        labels = {"initial": by_charge[q_i][0], "final": by_charge[q_f][0]}
        searched = {w: lab for w, lab in labels.items() if lab in searches}
        if searched:
            task.update(start_from={w: f"relaxed_{lab}" for w, lab in searched.items()})
        suffix = "" if len(sites) == 1 else f"/{site}"
        fws.append(Firework([task], name=f"{spec.name}/{model.label}/luminescence{suffix}",
                            spec={"_perovdefect": info},
                            parents=[searches[lab] for lab in searched.values()] or None))
    return fws
