"""Issue 13: `perovdefect build ...` validates every number and path up front; every bad input
gives exit code != 0 and one line `error: ...` naming the argument or file, never a traceback."""

from __future__ import annotations

import json
import os
import time

import pytest
from click.testing import CliRunner

from perovdefect.cli.main import main
from tests.conftest import run_cli


def invoke(*args: str):
    """Run the CLI in-process (fast); exceptions escaping click would show in result.exception."""
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no uncaught exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


VAC = ("build", "vacancies", "CsPbBr3-cubic")


@pytest.mark.parametrize("args,needles", [
    (VAC + ("--min-image-distance", "nan"), ("--min-image-distance", "finite")),
    (VAC + ("--min-image-distance", "inf"), ("--min-image-distance", "finite")),
    (VAC + ("--min-image-distance", "-3"), ("--min-image-distance",)),
    (VAC + ("--min-image-distance", "0"), ("--min-image-distance",)),
    (VAC + ("--min-image-distance", "twelve"), ("--min-image-distance",)),
    (VAC + ("--target-atoms", "-5"), ("--target-atoms",)),
    (VAC + ("--target-atoms", "0"), ("--target-atoms",)),
    (VAC + ("--target-atoms", "2.5"), ("--target-atoms",)),
    (VAC + ("--max-atoms", "0"), ("--max-atoms",)),
    (VAC + ("--min-image-distance", "12", "--target-atoms", "100"), ("not both",)),
    (VAC + ("--charges", "1,1"), ("--charges", "twice")),
    (VAC + ("--charges", "0.5"), ("--charges", "0.5")),
    (VAC + ("--charges", "1,a"), ("--charges", "'a'")),
    (VAC + ("--charges", "1,,0"), ("--charges",)),
    (VAC + ("--charges", ""), ("--charges",)),
    (VAC + ("--charges", "5"), ("--charges", "-4<=x<=4")),
    (VAC + ("--charges", "-7,0"), ("--charges", "-4<=x<=4")),
    (("build", "vacancies", "CsSnI3"), ("unknown compound",)),
    (("build", "vacancies"), ("COMPOUND",)),
    (VAC + ("--bogus",), ("--bogus",)),
    (("build", "cluster", "crystal-cutout", "--radius", "nan"), ("--radius", "finite")),
    (("build", "cluster", "crystal-cutout", "--radius", "-1"), ("--radius",)),
    (("build", "cluster", "pbbr6-octahedron", "--padding", "0"), ("--padding",)),
    (("build", "cluster", "crystal-cutout", "--vacancy-site", "-1"), ("--vacancy-site",)),
    (("build", "cluster", "crystal-cutout", "--vacancy-site", "0"), ("not Br",)),
    (("build", "cluster", "pbbr6-octahedron", "--charge", "1.5"), ("--charge",)),
    (("build", "crystal", "Cs4PbBr6", "-o", "out.txt"), ("out.txt", "unknown structure format")),
])
def test_bad_numbers_give_one_line_errors(args, needles):
    assert_one_line_error(invoke(*args), *needles)


@pytest.mark.parametrize("args", [("--min-image-distance", "1000"), ("--min-image-distance", "1e4"),
                                  ("--target-atoms", "100000")])
@pytest.mark.parametrize("compound", ["Cs4PbBr6", "CsPbBr3-Pnma", "CsPbBr3-cubic"])
def test_huge_requests_refused_at_once(compound, args):
    start = time.perf_counter()
    result = invoke("build", "vacancies", compound, *args)
    assert time.perf_counter() - start < 2.0
    assert_one_line_error(result, "needs at least", "--max-atoms")


def test_max_atoms_option_raises_and_lowers_the_limit():
    assert_one_line_error(invoke(*VAC, "--min-image-distance", "14", "--max-atoms", "44"),
                          "needs at least 45 atoms", "--max-atoms")
    r = invoke(*VAC, "--target-atoms", "6000", "--max-atoms", "6000", "--charges", "0", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["n_atoms"] == 5999


def test_vacancies_cs4pbbr6_beyond_13_A_and_by_target(tmp_path):
    """The sizes users could not build before (wrong site mapping): every one removes a Br."""
    for args in (("--min-image-distance", "14"), ("--min-image-distance", "20"),
                 ("--target-atoms", "1000")):
        r = invoke("build", "vacancies", "Cs4PbBr6", *args, "--json")
        assert r.exit_code == 0, r.output
        for s in json.loads(r.stdout):
            assert s["formula"].startswith("Cs") and s["wyckoff"] == "36f"
            n_cells = s["n_unit_cells"]  # issue 18: of the 22-atom primitive cell
            assert s["supercell_of"] == "primitive"
            assert s["formula"] == f"Cs{8 * n_cells}Pb{2 * n_cells}Br{12 * n_cells - 1}"
            if args[0] == "--min-image-distance":
                assert s["image_distance_A"] >= float(args[1])


def test_outputs_never_overwritten_without_force(tmp_path):
    out = tmp_path / "c.cif"
    assert invoke("build", "crystal", "Cs4PbBr6", "-o", str(out)).exit_code == 0
    before = out.read_text()
    out.write_text("keep me")
    assert_one_line_error(invoke("build", "crystal", "Cs4PbBr6", "-o", str(out)), str(out),
                          "--force")
    assert out.read_text() == "keep me"
    assert invoke("build", "crystal", "Cs4PbBr6", "-o", str(out), "--force").exit_code == 0
    assert out.read_text() == before
    mol = tmp_path / "m.xyz"
    mol.write_text("keep me")
    assert_one_line_error(invoke("build", "cluster", "pbbr6-octahedron", "-o", str(mol)), "--force")
    assert mol.read_text() == "keep me"

    folder = tmp_path / "vac"
    r = invoke(*VAC, "-o", str(folder))
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["V_Br_q+1.vasp", "V_Br_q-1.vasp", "V_Br_q0.vasp", "summary.json"]
    (folder / "summary.json").write_text("keep me")
    assert_one_line_error(invoke(*VAC, "-o", str(folder)), str(folder), "--force")
    assert (folder / "summary.json").read_text() == "keep me"
    assert invoke(*VAC, "-o", str(folder), "--force").exit_code == 0
    assert len(json.loads((folder / "summary.json").read_text())) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    assert invoke(*VAC, "-o", str(empty), "--charges", "0").exit_code == 0  # nothing to overwrite


def test_unwritable_outputs_give_one_line_errors(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert_one_line_error(invoke(*VAC, "-o", str(a_file / "sub")), "not a directory")
    assert_one_line_error(invoke("build", "crystal", "Cs4PbBr6", "-o", str(a_file / "c.cif")),
                          "not a directory")
    assert_one_line_error(invoke(*VAC, "-o", str(a_file)), str(a_file))
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_one_line_error(invoke(*VAC, "-o", str(locked / "vac")), "not writable")
        assert_one_line_error(invoke("build", "crystal", "Cs4PbBr6", "-o",
                                     str(locked / "c.cif")), "not writable")


def test_real_process_prints_no_traceback():
    """The installed command (a real process, not CliRunner) for one bad value and one huge size."""
    for args, needle in [(VAC + ("--charges", "1,1"), "--charges"),
                         (("build", "vacancies", "Cs4PbBr6", "--min-image-distance", "1e4"),
                          "needs at least")]:
        r = run_cli(*args)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
