"""The CLI toolkit every `perovdefect` command uses.

- Number types: `FiniteFloat` (a float within a range; NaN and infinities refused, which
  click's FloatRange lets through), `NumberList` (a strict comma-separated list of such numbers
  or of integers); integers are click.IntRange (click refuses NaN, inf and words there).
  Every bad value is a click usage error naming the option.
- Output paths: `output_file` and `output_dir` check a `-o` path before any work starts (never
  an existing file replaced without --force, the folder writable); `writable_folder` creates
  and proves a folder.
- Documents: `emit_document` writes a document through its atomic `to_json(path)` and prints
  the same text for --json.
- `ErrorGroup`: every group's class; a usage error or a library error (PerovDefectError) below
  it becomes one line `error: ...` on stderr and exit code 2, never a traceback.
- Library wording: library messages name a parameter (`max_atoms`), never a flag; `cli_wording`
  (used by ErrorGroup and `echo_warning`) shows the running command's option (--max-atoms).
"""

from __future__ import annotations

import json
import math
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from perovdefect.errors import PerovDefectError

# ------------------------------------------------------------------------------------- numbers


class FiniteFloat(click.FloatRange):
    """click.FloatRange (min/max inclusive unless min_open/max_open) that also refuses NaN and
    +-infinity: every comparison with NaN is false, so NaN passes FloatRange's range check."""

    name = "float"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        x = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(x, param, ctx)


class NumberParam(click.ParamType):
    """Base of the parameter types that hold numbers but are not click's own number types
    (lists, durations). `min`/`max` (None: unbounded) and `min_open`/`max_open` state the range
    each number must lie in; tests read them to try out-of-range values."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False

    def in_range(self, x: float) -> bool:
        """Whether x lies in [min, max] (ends open where said)."""
        if self.min is not None and (x < self.min or (self.min_open and x == self.min)):
            return False
        return not (self.max is not None
                    and (x > self.max or (self.max_open and x == self.max)))

    def describe_range(self) -> str:
        """'0<x<=10'-style text of the range (as click writes FloatRange's)."""
        lo = "" if self.min is None else f"{self.min:g}{'<' if self.min_open else '<='}"
        hi = "" if self.max is None else f"{'<' if self.max_open else '<='}{self.max:g}"
        return f"{lo}x{hi}"


class NumberList(NumberParam):
    """A comma-separated list of finite numbers (`1.5,3`), parsed strictly: no empty item, no
    NaN/inf, no word, each within the range; `integer` for whole numbers only, `length` for an
    exact count. Converts to a tuple of float (or int)."""

    def __init__(self, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False, integer: bool = False,
                 length: int | None = None) -> None:
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open
        self.integer, self.length = integer, length
        self.name = "integers" if integer else "numbers"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        one = "Q" if self.integer else "X"
        return f"{one},{one}" if self.length == 2 else f"{one}[,{one}...]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple:
        if isinstance(value, (tuple, list)):
            value = ",".join(str(v) for v in value)
        text = str(value)
        out: list[float | int] = []
        for i, item in enumerate(text.split(","), 1):
            out.append(self._item(text, i, item.strip(), param, ctx))
        if self.length is not None and len(out) != self.length:
            self.fail(f"{text!r} has {len(out)} values, expected {self.length}", param, ctx)
        return tuple(out)

    def _item(self, text: str, i: int, s: str, param: click.Parameter | None,
              ctx: click.Context | None) -> float | int:
        where = f"{text!r}: item {i}"
        if not s:
            self.fail(f"{where} is empty (give comma-separated numbers, e.g. "
                      f"{'1,0' if self.integer else '1.5,3'})", param, ctx)
        try:
            x = float(s)
        except ValueError:
            self.fail(f"{where} ({s!r}) is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{where} ({s!r}) is not a finite number", param, ctx)
        if self.integer and not (x == int(x) and s.lstrip("+-").isdigit()):
            self.fail(f"{where} ({s!r}) is not an integer", param, ctx)
        if not self.in_range(x):
            self.fail(f"{where} ({s}) is not in the range {self.describe_range()}", param, ctx)
        return int(s) if self.integer else x


# ------------------------------------------------------------------------------------- outputs


def _usage_error(message: str) -> NoReturn:
    raise click.UsageError(message)


def writable_folder(folder: str | Path, what: str = "output folder") -> Path:
    """`folder`, created (with parents) if needed and proven writable by creating and removing a
    temporary file in it (permission bits alone miss read-only file systems and root); a usage
    error naming `what` and the folder otherwise."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        _usage_error(f"{what} {folder} is not writable: {probe} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".perovdefect-write-test-"):
            pass
    except OSError as exc:
        _usage_error(f"{what} {folder} is not writable "
                     f"({exc.strerror or type(exc).__name__})")
    return folder


def output_file(path: str | Path | None, force: bool, option: str = "--output",
                make_folder: bool = True) -> Path | None:
    """Check a file the command will write, before any work: not a folder, not an existing
    file unless `force`, its folder writable (created when `make_folder`, else it must exist).
    None when no path is given."""
    if path is None or str(path) == "":
        return None
    p = Path(path)
    if p.is_dir():
        _usage_error(f"{option} {p} is a folder; give a file name")
    if (p.exists() or p.is_symlink()) and not force:
        _usage_error(f"{option} {p} exists: not overwritten (use --force to overwrite)")
    if not make_folder and not p.parent.is_dir():
        _usage_error(f"{option} {p}: its folder {p.parent} does not exist")
    writable_folder(p.parent, f"folder of {option}")
    return p


def output_dir(path: str | Path | None, force: bool, option: str = "--output",
               files: Iterable[str | Path] | None = None) -> Path | None:
    """Check (and create) a folder the command will write into, before any work: not a file;
    without `force`, none of `files` (the outputs, relative to the folder) may exist there, or,
    when `files` is None, the folder must be empty or new; writable. None when no path."""
    if path is None or str(path) == "":
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        _usage_error(f"{option} {p} is a file, not a folder")
    if not force and p.is_dir():
        if files is None:
            if any(p.iterdir()):
                _usage_error(f"{option} {p} exists and is not empty: not overwritten (use "
                             "--force to write into it)")
        else:
            existing = [p / f for f in files if (p / f).exists() or (p / f).is_symlink()]
            if existing:
                more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
                _usage_error(f"{option}: {existing[0]} exists{more}: not overwritten (use "
                             "--force to overwrite)")
    return writable_folder(p, f"{option} folder")


# ----------------------------------------------------------------------------------- documents


def json_safe(obj: Any) -> Any:
    """obj with numpy values made plain and every NaN/inf float replaced by None (JSON null),
    so that the JSON written is standard (no bare NaN)."""
    import numpy as np
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dump_json(obj: Any, indent: int | None = 1) -> str:
    """Standard JSON text of a plain object (numpy converted, NaN/inf as null)."""
    return json.dumps(json_safe(obj), indent=indent, allow_nan=False, default=float)


def echo_json(obj: Any) -> None:
    """Print a plain JSON object to stdout (numpy values converted, NaN/inf as null)."""
    click.echo(dump_json(obj))


def emit_document(doc: Any, output: str | Path | None, as_json: bool) -> bool:
    """Write `doc` (a perovdefect.documents.Document) to `output` through its atomic
    to_json(path) when given, and print the very same text when `as_json`. Returns as_json
    (the caller prints its human summary otherwise)."""
    text = doc.to_json(output, indent=1) if output else doc.to_json(indent=1)
    if as_json:
        click.echo(text)
    return as_json


# ------------------------------------------------------------------------------ library wording

#: The option that gives each library parameter. Library messages and stored fields speak in
#: the library's terms: a parameter the user can give is named in backticks (`max_atoms`),
#: never as a flag. The CLI shows the first of these options that the running command has
#: (`charges` is --charges of `luminescence`, which also has --charge, and --charge of
#: `formation`); a parameter the command has no option for stays as written.
LIBRARY_OPTIONS: dict[str, tuple[str, ...]] = {
    "allow_mixed": ("--allow-mixed",),
    "allow_truncated": ("--allow-truncated",),
    "band_edge_eV": ("--band-edge-eV",),
    "charges": ("--charges", "--charge"),
    "compound": ("--compound",),
    "correction": ("--correction",),
    "dft": ("--no-dft",),
    "dielectric": ("--dielectric",),
    "dielectric_electronic": ("--eps-electronic",),
    "dielectric_total": ("--eps-total",),
    "excitation_N": ("--excitation-N",),
    "force": ("--force",),
    "group_by": ("--group-by",),
    "host": ("--host",),
    "launchpad_file": ("--launchpad",),
    "max_atoms": ("--max-atoms",),
    "max_host_above_hull_meV_per_atom": ("--max-host-above-hull",),
    "max_memory_gb": ("--max-memory-gb",),
    "project": ("--project",),
    "rep_rate_hz": ("--rep-rate-mhz",),
    "settings": ("--photon-settings",),
    "sites_per_cell": ("--sites",),
    "timestamps_unit_s": ("--timestamps-unit",),
}

_NAMED_PARAMETER = re.compile(r"`([A-Za-z_]\w*)`")


def cli_wording(text: str, command: click.Command | None = None) -> str:
    """A library message as the CLI shows it: each `parameter` it names (LIBRARY_OPTIONS)
    replaced by the option of `command` (default: the running command) that gives it."""
    if command is None:
        ctx = click.get_current_context(silent=True)
        command = ctx.command if ctx is not None else None
    if command is None:
        return text
    options = {opt for p in command.params for opt in p.opts}

    def option(m: re.Match) -> str:
        return next((o for o in LIBRARY_OPTIONS.get(m.group(1), ()) if o in options),
                    m.group(0))
    return _NAMED_PARAMETER.sub(option, text)


def echo_warning(text: str, prefix: str = "warning") -> None:
    """`prefix: text` on stderr, the library's parameter names shown as the running
    command's options (cli_wording)."""
    click.echo(f"{prefix}: {cli_wording(text)}", err=True)


# -------------------------------------------------------------------------------------- errors

#: usage errors about how to call a command (not a value): the message points to --help
_CALL_ERRORS = (click.NoSuchOption, click.MissingParameter, click.BadOptionUsage,
                click.BadArgumentUsage)


def _fail(message: str, code: int = 2) -> NoReturn:
    """One line `error: MESSAGE` on stderr (whitespace folded), then exit with `code`."""
    click.echo(f"error: {' '.join(str(message).split())}", err=True)
    sys.exit(code)


def _report(exc: BaseException, command: click.Command | None = None) -> NoReturn:
    """The one-line report of an error the CLI knows (see ErrorGroup); a library error in the
    wording of `command`, the command that raised it (cli_wording)."""
    if isinstance(exc, click.ClickException):
        message = exc.format_message()
        if isinstance(exc, _CALL_ERRORS) and getattr(exc, "ctx", None) is not None:
            message += f" (see `{exc.ctx.command_path} --help`)"
        _fail(message, exc.exit_code if exc.exit_code else 2)
    if isinstance(exc, FileNotFoundError):
        _fail(f"{exc.filename or exc}: no such file")
    if isinstance(exc, OSError):
        _fail(f"{exc.filename}: {exc.strerror or type(exc).__name__}")
    _fail(cli_wording(str(exc), command) if command is not None else str(exc))


class ErrorGroup(click.Group):
    """The group class of every `perovdefect` group: click's usage errors (a bad or missing
    value, an unknown option) and library errors (PerovDefectError, a missing or unreadable
    file) of the group and the commands below it become one line `error: ...` on stderr and
    exit code 2, never a usage block or a traceback. Asking for help with no arguments still
    prints the help."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as exc:
            _report(exc)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except (click.ClickException, PerovDefectError) as exc:
            name = ctx.invoked_subcommand
            _report(exc, (self.get_command(ctx, name) if name else None) or self)
        except OSError as exc:
            if exc.filename is None:
                raise
            _report(exc)
