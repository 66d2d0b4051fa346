"""The `perovdefect` command: one group, subcommands thin over the library.

Every PerovDefectError (bad input) becomes `error: ...` on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import sys

import click

from perovdefect import __version__
from perovdefect.errors import PerovDefectError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PerovDefectError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except FileNotFoundError as exc:
            click.echo(f"error: {exc.filename or exc}: no such file", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="perovdefect")
def main() -> None:
    """Br-vacancy defect levels (DFT) and single-particle photon statistics (TCSPC)."""


def _register() -> None:
    from perovdefect.cli import (build, calc, campaign, demo, optics, photons, report,
                                 thermo, vertical)
    main.add_command(build.build)
    main.add_command(calc.parse)
    main.add_command(calc.levels)
    main.add_command(thermo.formation)
    main.add_command(thermo.luminescence)
    main.add_command(optics.transition)
    main.add_command(vertical.vertical)
    main.add_command(campaign.campaign)
    main.add_command(photons.photons)
    main.add_command(report.report)
    main.add_command(demo.demo)


_register()
