"""Issue 20: one CLI toolkit (perovdefect.cli.common). Every option of every command that takes
a number or a list of numbers refuses NaN, infinities, words and out-of-range values with one
line `error: ...` naming the option (exit code != 0, no traceback). The cases are generated
from the click commands themselves: a new option is covered without editing this file.
Plus the holes this toolkit closed, and `--json` printing the very document `-o` writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from perovdefect.cli.common import NumberList, NumberParam, emit_document
from perovdefect.cli.main import main

# ------------------------------------------------------------------------------ the walk


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    """(path, command) of every leaf command under `group`, recursively."""
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + (name,))
        else:
            yield path + (name,), cmd


def _is_number(t: click.ParamType) -> bool:
    """click's int/float types (and their ranges) or one of perovdefect's number types."""
    return isinstance(t, (click.types.IntParamType, click.types.FloatParamType, NumberParam))


def _bad_values(t: click.ParamType) -> list[str]:
    """Values the type must refuse: non-numbers, and beyond each end of its range."""
    bad = ["nan", "inf", "-inf", "abc"]
    if isinstance(t, NumberList):
        bad += ["1,,2", "1,nan"]
    integer = isinstance(t, click.types.IntParamType) or getattr(t, "integer", False)
    lo, hi = getattr(t, "min", None), getattr(t, "max", None)
    if lo is not None:
        bad.append(repr(lo) if getattr(t, "min_open", False) else
                   repr(lo - 1 if integer else lo - max(1.0, abs(lo))))
    if hi is not None:
        bad.append(repr(hi) if getattr(t, "max_open", False) else
                   repr(hi + 1 if integer else hi + max(1.0, abs(hi))))
    return bad


def _number_options() -> list[tuple[tuple[str, ...], click.Option]]:
    return [(path, p) for path, cmd in _commands(main) for p in cmd.params
            if isinstance(p, click.Option) and _is_number(p.type)]


def _cases():
    for path, opt in _number_options():
        name = max(opt.opts, key=len)
        for value in _bad_values(opt.type):
            yield pytest.param(path, name, value, id=f"{' '.join(path)} {name}={value}")


def _valid(t: click.ParamType) -> str:
    """A value of a required number parameter that passes (only when another one is tested)."""
    lo, hi = getattr(t, "min", None), getattr(t, "max", None)
    x = (lo + hi) / 2 if lo is not None and hi is not None else (
        lo + 1 if lo is not None else (hi - 1 if hi is not None else 1))
    return str(int(x) if isinstance(t, click.types.IntParamType) else x)


def _dummy(param: click.Parameter, tmp: Path) -> str:
    """A value for a required parameter that lets click go on to the option under test:
    existing paths where the type insists on existence, the first choice, else a word."""
    t = param.type
    if isinstance(t, click.Path) and t.exists:
        if not t.file_okay:
            return str(tmp)
        f = tmp / "dummy.txt"
        f.write_text("x")
        return str(f)
    if isinstance(t, click.Choice):
        return str(t.choices[0])
    if _is_number(t):
        return _valid(t)
    return str(tmp / "does-not-exist")


def _argv(path, name, value, tmp: Path) -> list[str]:
    """The command line: the option under test first (click processes the values given in
    the order given), then a dummy value for every other required parameter."""
    cmd: click.Command = main
    for part in path:
        cmd = cmd.commands[part]
    args, rest = [], []
    for p in cmd.params:
        if isinstance(p, click.Argument) and p.required:
            args.append(_dummy(p, tmp))
        elif isinstance(p, click.Option) and p.required and name not in p.opts:
            rest += [p.opts[-1], _dummy(p, tmp)]
    return [*path, f"{name}={value}", *rest, *args]  # NAME=VALUE: "-inf" is no option


def _one_line_error(result, *needles: str) -> str:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_the_walk_finds_every_number_option():
    """An empty or broken walk must fail: the known number options are all found."""
    found = {(" ".join(path), max(opt.opts, key=len)) for path, opt in _number_options()}
    assert len(found) >= 40, sorted(found)
    for known in [("levels", "--pl-nm"), ("report", "--excitation-N"),
                  ("report", "--background-cps"), ("photons analyze", "--thresholds"),
                  ("build vacancies", "--charges"), ("campaign status", "--lost-after"),
                  ("luminescence", "--charges"), ("vertical", "--eps-total"),
                  ("formation", "--dielectric"), ("transition", "--energy-eV")]:
        assert known in found, known
    assert len(list(_cases())) >= 5 * len(found)


#: name endings that are units: an option named so takes a number, whatever its type says
UNITS = {"nm", "ev", "mev", "ms", "ns", "ps", "s", "cps", "hz", "mhz", "gb", "n", "k", "a"}


def test_options_named_with_a_unit_take_numbers():
    """A number option typed as a plain string (as `report --excitation-N` was) escapes the
    walk above; its unit-suffixed name gives it away."""
    for path, cmd in _commands(main):
        for p in cmd.params:
            longs = [o for o in getattr(p, "opts", []) if o.startswith("--")]
            if any(o.rsplit("-", 1)[-1].lower() in UNITS for o in longs) and not p.is_flag:
                assert _is_number(p.type), (" ".join(path), longs, p.type)


@pytest.mark.parametrize("path,name,value", list(_cases()))
def test_every_number_option_refuses_bad_values(path, name, value, tmp_path):
    result = CliRunner().invoke(main, _argv(path, name, value, tmp_path))
    line = _one_line_error(result)
    assert name in line or any(o in line for o in _option(path, name).opts), line


def _option(path, name) -> click.Option:
    cmd: click.Command = main
    for part in path:
        cmd = cmd.commands[part]
    return next(p for p in cmd.params if name in getattr(p, "opts", ()))


# ------------------------------------------------------------------------------ fixed holes


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("value", ["1,abc", "nan", "0.5,inf", "-1", "1,,2"])
def test_report_excitation_n_is_parsed_strictly(value, tmp_path):
    """Was a bare float(): a word ended in a traceback and NaN was accepted."""
    r = invoke("report", "--photons", str(tmp_path / "x.ptu"), "--excitation-N", value,
               "-o", str(tmp_path / "rep"))
    _one_line_error(r, "--excitation-N")
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("value", ["nan", "-5", "inf", "many"])
def test_report_background_cps_is_checked(value, tmp_path):
    r = invoke("report", "--photons", str(tmp_path / "x.ptu"), "--background-cps", value,
               "-o", str(tmp_path / "rep"))
    _one_line_error(r, "--background-cps")


@pytest.mark.parametrize("value", ["-517", "0", "nan", "1e9"])
def test_levels_pl_nm_refuses_impossible_wavelengths(value, tmp_path):
    """A negative wavelength used to pass (exit 0)."""
    r = invoke("levels", "--host", "h", "--defect", "d", "--pl-nm", value)
    _one_line_error(r, "--pl-nm")


def test_library_errors_and_usage_errors_are_one_line_in_every_group(tmp_path):
    """One error group for all: a missing file (library error), an unknown option and a
    missing argument, at the top level and in each subgroup."""
    _one_line_error(invoke("parse", str(tmp_path / "missing.xml")), "missing.xml")
    _one_line_error(invoke("levels", "--bogus"), "--bogus", "--help")
    for group in ("build", "campaign", "photons"):
        _one_line_error(invoke(group, "no-such-command"), "no-such-command")
    _one_line_error(invoke("photons", "simulate"), "--output")
    _one_line_error(invoke("campaign", "submit"), "CAMPAIGN_FILE")
    assert invoke("photons").exit_code in (0, 2)  # no arguments: the help, not an error line
    assert "Usage:" in invoke("photons").output


# ------------------------------------------------------------------------ outputs and --json


def test_output_helpers_refuse_overwrites_and_unwritable_places(tmp_path):
    from perovdefect.cli.common import output_dir, output_file
    f = tmp_path / "a.json"
    assert output_file(f, False) == f and not f.exists()
    f.write_text("keep")
    with pytest.raises(click.UsageError, match=r"--output .*a.json exists.*--force"):
        output_file(f, False)
    assert output_file(f, True) == f and f.read_text() == "keep"
    with pytest.raises(click.UsageError, match="is a folder"):
        output_file(tmp_path, True)
    with pytest.raises(click.UsageError, match="does not exist"):
        output_file(tmp_path / "nodir" / "x.json", False, make_folder=False)
    assert not (tmp_path / "nodir").exists()
    with pytest.raises(click.UsageError, match="not writable: .*a.json is not a directory"):
        output_dir(f / "sub", True)
    d = tmp_path / "out"
    assert output_dir(d, False, files=["r.json"]) == d and d.is_dir()
    (d / "other").write_text("x")
    assert output_dir(d, False, files=["r.json"]) == d  # other files are not ours
    with pytest.raises(click.UsageError, match="not empty.*--force"):
        output_dir(d, False)
    (d / "r.json").write_text("x")
    with pytest.raises(click.UsageError, match=r"r.json exists.*--force"):
        output_dir(d, False, files=["r.json"])


def test_emit_document_prints_what_it_writes(tmp_path, capsys):
    from perovdefect.photons.stats import PhotonStats
    doc = PhotonStats(source="x.ptu", bin_width_s=0.01, n_levels=0, n_emitting_levels=0,
                      excitation_N=math.nan)
    assert emit_document(doc, tmp_path / "d.json", True)
    text = (tmp_path / "d.json").read_text()
    assert capsys.readouterr().out == text + "\n" and '"excitation_N": null' in text
    assert PhotonStats.from_json(tmp_path / "d.json") == doc.model_copy(
        update={"excitation_N": None})
    assert not list(tmp_path.glob("*.tmp*"))  # written through a temporary file and a rename


def _formation_inputs(tmp_path: Path) -> list[str]:
    """Host and V_Br (+1, 0) documents (the ElectronicStructure JSON that `parse` reads, built
    as test_formation builds them) and a chemical-potential file."""
    from tests.test_formation import CELL, HOST, _doc
    vac = ["Cs"] * 8 + ["Pb"] * 8 + ["Br"] * 23
    docs = {"host": HOST, "q1": _doc(vac, CELL, -195.0, 1, "q1"),
            "q0": _doc(vac, CELL, -196.5, 0, "q0")}
    for name, doc in docs.items():
        doc.to_json(tmp_path / f"{name}.json")
    (tmp_path / "mu.json").write_text(json.dumps({"Br-rich": {"Br": -1.5},
                                                  "Br-poor": {"Br": -3.0}}))
    return ["formation", "--bulk", str(tmp_path / "host.json"), "--defect",
            str(tmp_path / "q1.json"), "--defect", str(tmp_path / "q0.json"), "--correction",
            "none", "--chempots", str(tmp_path / "mu.json")]


def test_formation_json_prints_the_document_o_writes(tmp_path):
    from perovdefect.thermo.calculations import FormationResult
    args = _formation_inputs(tmp_path)
    out = tmp_path / "formation.json"
    r = invoke(*args, "--json", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout == out.read_text() + "\n"
    doc = FormationResult.from_json(out)  # the document itself, not a reshaped dict
    assert json.loads(r.stdout) == doc.to_dict()
    levels = doc.diagram.transition_levels + doc.diagram.levels_outside_gap
    assert [lv.charges for lv in levels] == [[1, 0]]
    # the same document without -o; -o again refused without --force, the file kept
    again = invoke(*args, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout) == doc.to_dict()
    before = out.read_text()
    _one_line_error(invoke(*args, "-o", str(out)), str(out), "--force")
    assert out.read_text() == before
    assert invoke(*args, "-o", str(out), "--force").exit_code == 0


def test_levels_json_is_the_defect_levels_document(tmp_path):
    from perovdefect.levels.ingap import DefectLevels
    args = _formation_inputs(tmp_path)
    r = invoke("levels", "--host", args[2], "--defect", args[6], "--json")
    assert r.exit_code == 0, r.output
    assert DefectLevels.from_dict(json.loads(r.stdout)).to_dict() == json.loads(r.stdout)


def test_photons_analyze_writes_photon_stats_through_the_document(tmp_path):
    """Each STEM.photonstats.json is exactly PhotonStats.to_json (was a re-dumped dict)."""
    from perovdefect.photons.io.ptu_write import write_ptu
    from perovdefect.photons.simulate import SimulationParams, simulate
    from perovdefect.photons.stats import PhotonStats
    src = tmp_path / "sim.ptu"
    write_ptu(src, simulate(SimulationParams(duration_s=0.5, n_emitters=1, seed=3)))
    r = invoke("photons", "analyze", str(src), "-o", str(tmp_path / "res"))
    assert r.exit_code == 0, r.output
    path = tmp_path / "res" / "sim.photonstats.json"
    assert path.read_text() == PhotonStats.from_json(path).to_json()
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["files"][0]["photons"] > 0
