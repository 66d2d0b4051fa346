"""The `perovdefect` command: one group, subcommands thin over the library.

Every usage error and every PerovDefectError (bad input) becomes one line `error: ...` on stderr
and exit code 2, no traceback (perovdefect.cli.common.ErrorGroup, the class of every group).
"""

from __future__ import annotations

import click

from perovdefect import __version__
from perovdefect.cli.common import ErrorGroup


@click.group(cls=ErrorGroup)
@click.version_option(__version__, prog_name="perovdefect")
def main() -> None:
    """Br-vacancy defect levels (DFT) and single-particle photon statistics (TCSPC)."""


def _register() -> None:
    from perovdefect.cli import (build, calc, campaign, demo, optics, photons, report,
                                 thermo, vertical)
    main.add_command(build.build)
    from perovdefect.cli import defects  # noqa: F401  (adds `build defects|distortions`)
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
