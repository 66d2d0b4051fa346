"""`perovdefect demo`: the main job, end to end on the embedded LaunchPad."""

from __future__ import annotations

import click


@click.command()
@click.option("-o", "--output", "out", default="demo-out", show_default=True,
              type=click.Path(file_okay=False))
@click.option("--tier", type=click.Choice(["pbe", "hse06-soc"]), default="pbe",
              show_default=True, help="hse06-soc adds non-self-consistent HSE06 and SOC (PW).")
@click.option("--quick", is_flag=True, help="Shorter photon recordings (4 s instead of 10 s).")
@click.option("--no-dft", is_flag=True, help="Skip the calculations (for machines without the "
              "local code); photons, PL and the report still run.")
def demo(out: str, tier: str, quick: bool, no_dft: bool) -> None:
    """Cluster models -> FireWorks campaign (GPAW) -> in-gap state -> simulated single-particle
    TCSPC power series -> analysis -> joint report (DIR/report.html, DIR/summary.json)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    from perovdefect.demo import run_demo
    console = Console()
    state: dict = {}

    def progress(done: int, total: int, label: str) -> None:
        if "bar" not in state:
            state["bar"] = Progress(TextColumn("      {task.description}"), BarColumn(),
                                    MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                    transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("DFT steps", total=total)
        state["bar"].update(state["task"], completed=done, total=total,
                            description=(label.split("/", 2)[-1] if label else "DFT steps"))
        if done >= total and total:
            state["bar"].stop()

    try:
        summary = run_demo(out, tier, quick, log=console.print, progress=progress,
                           dft=not no_dft)
    finally:
        if "bar" in state:
            state["bar"].stop()
    t = summary["timings_s"]
    console.print(f"done in {t['total_s']:.0f} s (DFT {t['dft_s']:.0f} s). Report: "
                  f"{summary['files']['html']}")
    console.print(f"output folder: {summary['output_dir']}")
