"""The library speaks in its own terms; the CLI adds its flags (issue 20).

Library code (perovdefect/ outside perovdefect/cli/) raises errors and stores fields that name
the library's parameters (`max_atoms`), never a command-line flag (--max-atoms): the library is
called from Python, FireWorks tasks and the report as well as from the CLI, and a stored
document outlives the CLI's spelling. The CLI shows each named parameter as the option of the
running command that gives it (perovdefect.cli.common.cli_wording, used by ErrorGroup and
echo_warning)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click
from click.testing import CliRunner

import perovdefect
from perovdefect.cli.common import LIBRARY_OPTIONS, cli_wording
from perovdefect.cli.main import main

PACKAGE = Path(perovdefect.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z]")
#: a string that is one option token and nothing else is an element of another program's
#: argument list (FireWorks' `rlaunch --loglvl WARNING rapidfire --nlaunches N`), not a message
ARGV_TOKEN = re.compile(r"--[a-z][a-z0-9-]*")


def _library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring-like string statements (module, class, function and attribute
    docstrings), which may document the CLI."""
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)  # a lambda's body is one expression
        for stmt in body if isinstance(body, list) else []:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                    and isinstance(stmt.value.value, str):
                out.add(id(stmt.value))
    return out


def _strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant of `path` that is not a docstring: plain
    strings and the literal parts of f-strings, wherever they end up (an exception, a
    warning, a stored field, a log line)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in skip]


def test_library_strings_name_no_cli_flag():
    """Every string of library code (not docstrings, not comments) free of `--flag`; the CLI
    adds its flags. Fails naming file:line and the string."""
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
             for path in _library_files() for line, text in _strings(path)
             if FLAG.search(text) and not ARGV_TOKEN.fullmatch(text)]
    assert not found, "CLI flags in library strings (name the parameter as `name` and map it " \
                      "in perovdefect.cli.common.LIBRARY_OPTIONS):\n" + "\n".join(found)


def test_the_scan_sees_messages_built_in_pieces(tmp_path):
    """The scan is not blind: a flag in an f-string part of a raise, in a message kept in a
    variable and in a stored default is found; a docstring and an argv token are not."""
    src = tmp_path / "m.py"
    src.write_text('"""Module doc: `perovdefect x --y`."""\n'
                   "def f(q):\n"
                   '    """Doc --z."""\n'
                   '    msg = "give --charge"\n'
                   '    cmd = ["rlaunch", "--loglvl", "WARNING"]\n'
                   '    raise ValueError(f"{q}: see --force")\n'
                   "class D:\n"
                   '    origin: str = "given (--rep-rate-mhz)"\n')
    hits = [(line, t) for line, t in _strings(src)
            if FLAG.search(t) and not ARGV_TOKEN.fullmatch(t)]
    assert sorted(line for line, _ in hits) == [4, 6, 8]


def _commands(group: click.Group = main) -> list[click.Command]:
    out: list[click.Command] = []
    for cmd in group.commands.values():
        out += _commands(cmd) if isinstance(cmd, click.Group) else [cmd]
    return out


def test_every_mapped_parameter_is_named_and_every_option_exists():
    """LIBRARY_OPTIONS does not rot: each parameter is named (`name`) by some library string,
    and each option is an option of some command."""
    named = {m for path in _library_files() for _, text in _strings(path)
             for m in re.findall(r"`(\w+)`", text)}
    assert set(LIBRARY_OPTIONS) <= named, set(LIBRARY_OPTIONS) - named
    options = {opt for cmd in _commands() for p in cmd.params for opt in p.opts}
    missing = {o for opts in LIBRARY_OPTIONS.values() for o in opts} - options
    assert not missing, missing


def test_cli_wording_uses_the_running_commands_option():
    """`charges` is --charge of `formation` and --charges of `luminescence` (which has both);
    a command without the option keeps the library's name."""
    text = "d: its charge is unknown; give it with `charges`"
    assert cli_wording(text, main.commands["formation"]).endswith("give it with --charge")
    assert cli_wording(text, main.commands["luminescence"]).endswith("give it with --charges")
    assert cli_wording(text, main.commands["parse"]) == text
    assert cli_wording("`rep_rate_hz` (80 MHz) and `not_a_parameter`",
                       main.commands["photons"].commands["info"]) == \
        "--rep-rate-mhz (80 MHz) and `not_a_parameter`"


def test_a_library_error_reaches_the_cli_user_with_the_option(tmp_path):
    """photons.population.recordings raises "`group_by` ...: not a regular expression"; the
    user of `photons population` reads --group-by, in one line."""
    raw = tmp_path / "p0.ptu"
    raw.write_bytes(b"not read: the pattern is refused first")
    r = CliRunner().invoke(main, ["photons", "population", str(raw), "-o", str(tmp_path / "o"),
                                  "--group-by", "q(\\d+"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith("error: --group-by 'q(\\\\d+': not a regular expression"), line
