"""The typed campaign table (`campaign collect`): every Firework's task declares its step kind,
old tables still load, and the thermodynamics options are checked. The real campaigns that fill
the table run in tests/test_campaign_thermo.py and tests/test_workflows.py."""

from __future__ import annotations

import pytest
import yaml

from perovdefect.errors import CampaignError, ParseError
from perovdefect.workflows.spec import load_campaign
from perovdefect.workflows.table import CampaignTable, defect_of

CLUSTER = {"compound": "Cs4PbBr6", "model": "cluster", "cluster": "pbbr6-octahedron",
           "padding_A": 4.0, "charges": [0, 1]}
BASE = {"name": "table", "code": "gpaw", "tier": "pbe", "relax": False, "models": [CLUSTER],
        "settings": {"mode": "lcao", "grid_spacing_A": 0.25}}


def write(tmp_path, **changes):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return path


def test_every_firework_declares_its_step_kind(tmp_path):
    """The step name a Firework carries leads collect to its own task class, whose DONE_FILE
    is the file that task writes: no step name or result file lives outside the task."""
    from perovdefect.workflows.campaign import build_workflows
    from perovdefect.workflows.tasks import StepKind, step_kind
    spec = load_campaign(write(
        tmp_path, thermodynamics={"hosts": ["CsBr"], "phases": ["Cs", "Br2", "CsBr"]},
        luminescence={}))
    seen = set()
    for wf in build_workflows(spec, tmp_path / "runs").values():
        for fw in wf.fws:
            (task,) = fw.tasks
            kind = step_kind(fw.spec["_perovdefect"]["step"])
            assert isinstance(task, kind) and issubclass(kind, StepKind), fw.name
            seen.add(type(task).__name__)
            if kind.STEP is not None:  # a result file named by the task itself
                assert kind.DONE_FILE.endswith(".json") and kind.STEP in kind.DONE_FILE
    assert seen == {"RunStepTask", "AnalyzeLevelsTask", "CompetingPhasesTask",
                    "LuminescenceTask"}


@pytest.mark.parametrize("label, defect", [
    ("V_Br_q0", "V_Br"), ("V_Br_8d_q+1", "V_Br_8d"), ("Br_Cs_q-2", "Br_Cs"),
    ("Br_i_q+3", "Br_i"), ("host", "host")])
def test_defect_of_strips_only_the_charge(label, defect):
    assert defect_of(label) == defect


def test_tables_of_older_versions_load_or_say_how_to_regenerate(tmp_path):
    """A collect table written before the typed table (no schema_version) loads: its
    formation entries were of V_Br, the only defect then; one with luminescence summaries
    (no result documents) is refused with what to do."""
    old = {"project": "p", "analyses": [], "steps": [
        {"campaign": "c", "model": "m", "label": "V_Br_q0", "role": "defect", "charge": 0,
         "step": "pbe", "state": "COMPLETED", "fw_id": 3, "run_dir": "/x", "gap_eV": 1.0,
         "total_energy_eV": -3.0, "custodian_corrections": None}],
        "formation": [{"campaign": "c", "model": "m", "step": "pbe", "problem": "later"}]}
    table = CampaignTable.from_dict(old, "old.json")
    assert table.formation[0].defect == "V_Br" and table.steps[0].gap_eV == 1.0
    assert table.latest_steps("c", "m", "pbe")[0].label == "V_Br_q0"
    with pytest.raises(ParseError, match="campaign collect"):
        CampaignTable.from_dict({**old, "luminescence": [{"zpl_eV": 2.0}]}, "old.json")
    with pytest.raises(ParseError, match="old.json"):
        CampaignTable.from_dict({**old, "steps": [{"label": "x"}], "schema_version": 2},
                                "old.json")
    path = tmp_path / "t.json"
    table.to_json(path)
    assert CampaignTable.from_json(path) == table


def test_thermodynamics_temperatures_are_checked_and_do_not_resubmit(tmp_path):
    from perovdefect.workflows.builder import thermo_key
    t = {"hosts": ["CsBr"], "phases": ["Cs", "Br2", "CsBr"]}
    with pytest.raises(CampaignError, match="quench_temperature_K needs temperature_K"):
        load_campaign(write(tmp_path, thermodynamics={**t, "quench_temperature_K": 300}))
    with pytest.raises(CampaignError, match="temperature_K"):
        load_campaign(write(tmp_path, thermodynamics={**t, "temperature_K": -5}))
    k0 = thermo_key(load_campaign(write(tmp_path, thermodynamics=t)))
    spec = load_campaign(write(tmp_path, thermodynamics={
        **t, "temperature_K": 1300, "quench_temperature_K": 300}))
    assert spec.thermodynamics.temperature_K == 1300
    assert thermo_key(spec) == k0  # applied by collect, nothing to run again


def test_shipped_native_defect_campaign_builds(tmp_path):
    """workflows/cs4pbbr6_native_defects_gpaw.yaml (the example campaign of the candidate
    emitters): V_Br, both Br_Cs sites and the 18e Br interstitial in the 22-atom cell; V_Br
    relaxed from ShakeNBreak's starts in each charge (ground_state_search.defects), then the
    static step from the chosen one; the others relaxed from their built cells."""
    from pathlib import Path

    from perovdefect.workflows.campaign import build_workflows
    spec = load_campaign(Path(__file__).parents[1] / "workflows" /
                         "cs4pbbr6_native_defects_gpaw.yaml")
    wfs = build_workflows(spec, tmp_path / "runs")
    names = [fw.name for wf in wfs.values() for fw in wf.fws]
    searched = sorted(n.split("/")[2] for n in names if n.endswith("/ground_state"))
    assert searched == ["V_Br_q+1", "V_Br_q0"]
    base = "cs4pbbr6-native-defects/Cs4PbBr6_supercell-d9.5"
    unsearched = ("Br_Cs_18e", "Br_Cs_6a", "Br_i_18e")
    for label in [f"{d}_q{q}" for d in unsearched for q in ("+1", "0")]:
        assert f"{base}/{label}/relax" in names and f"{base}/{label}/pbe" in names
        assert not any(n.split("/")[2].startswith(f"{label}@") for n in names)
    for label in searched:  # the chosen start goes on to the static step
        assert f"{base}/{label}/pbe" in names and f"{base}/{label}/relax" not in names
        starts = [n for n in names if n.split("/")[2].startswith(f"{label}@")]
        assert any("Unperturbed" in n for n in starts) and len(starts) >= 2
