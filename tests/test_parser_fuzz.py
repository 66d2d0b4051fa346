"""Issue 13 (property-based): truncations, byte flips and random bytes of every real VASP output
in ../shared/data/vasp (and of a pw.x output and a perovdefect result document), fed to
`perovdefect.parsers.parse`: the only exceptions allowed to escape are PerovDefectError
subclasses. Derandomised and bounded (PEROVDEFECT_FUZZ_EXAMPLES per file, default 12)."""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from perovdefect.errors import PerovDefectError  # noqa: E402
from perovdefect.parsers import parse  # noqa: E402

N = int(os.environ.get("PEROVDEFECT_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=N, deadline=None, database=None,
                derandomize=os.environ.get("PEROVDEFECT_FUZZ_RANDOM") != "1",
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])
_counter = itertools.count()
#: the smaller real outputs (the 1.3 MB Cs2AgBiBr6 run adds time, not cases)
VASP = ("doped_Br2_competing_phase", "doped_O2_vasp_ncl", "pmgad_v_N_GaN_q+1")


@pytest.fixture(scope="module")
def originals(shared_data) -> dict[str, bytes]:
    out = {f"{name}/vasprun.xml": gzip.open(shared_data / "vasp" / name / "vasprun.xml.gz")
           .read() for name in VASP}
    from tests.test_backends import _es
    out["doc/result.json"] = _es().to_json().encode()
    return out


def _check(data: bytes, name: str, workdir: Path) -> None:
    folder = workdir / f"case{next(_counter)}"
    folder.mkdir()
    path = folder / Path(name).name
    path.write_bytes(data)
    try:
        parse(path)
    except PerovDefectError as exc:
        assert str(path) in str(exc) or path.name in str(exc), str(exc)


@pytest.mark.parametrize("name", [f"{n}/vasprun.xml" for n in VASP] + ["doc/result.json"])
def test_truncated_and_flipped_outputs_give_only_clear_errors(originals, name, tmp_path):
    raw = originals[name]

    @FUZZ
    @given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0),
                                                             st.integers(0, 255)), max_size=8))
    def run(cut, flips):
        data = bytearray(raw[: int(cut * len(raw))] if cut < 0.98 else raw)
        for where, value in flips:
            if data:
                data[int(where * (len(data) - 1))] = value
        _check(bytes(data), name, tmp_path)
    run()


@FUZZ
@given(data=st.binary(min_size=0, max_size=4096),
       name=st.sampled_from(["vasprun.xml", "OUTCAR", "pw.out", "result.json",
                             "data-file-schema.xml"]))
def test_random_bytes_give_only_clear_errors(data, name, tmp_path_factory):
    _check(data, name, tmp_path_factory.mktemp("rnd"))
