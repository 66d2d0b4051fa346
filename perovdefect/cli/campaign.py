"""`perovdefect campaign submit|status|run|rerun|collect|qadapter`."""

from __future__ import annotations

import os

import click

from perovdefect.cli.common import echo_json

project_opt = click.option("--project", default=lambda: os.environ.get(
    "PEROVDEFECT_PROJECT", "perovdefect-project"), show_default="perovdefect-project",
    help="Project folder (embedded LaunchPad store, run directories).")
launchpad_opt = click.option("--launchpad", "launchpad", type=click.Path(dir_okay=False),
                             help="my_launchpad.yaml of a MongoDB LaunchPad (default: embedded).")


def _progress_runner(fn, **kw):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("steps", total=None)

        def update(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total,
                            description=(label.split("/", 1)[-1] if label else "steps"))
        return fn(progress=update, **kw)


@click.group()
def campaign() -> None:
    """FireWorks campaigns: many defects x charges x functionals."""


@campaign.command()
@click.argument("campaign_file", type=click.Path())
@project_opt
@launchpad_opt
@click.option("--json", "as_json", is_flag=True)
def submit(campaign_file, project, launchpad, as_json) -> None:
    """Validate CAMPAIGN_FILE (YAML) and add its workflows (models already present are skipped)."""
    from perovdefect.workflows.campaign import submit as do_submit
    out = do_submit(campaign_file, project, launchpad)
    if as_json:
        echo_json(out)
    else:
        click.echo(f"campaign {out['campaign']}: added {len(out['added'])} model workflow(s) "
                   f"{out['added']}; already present: {out['already_present']}")


@campaign.command()
@project_opt
@launchpad_opt
@click.option("--campaign", "name", help="Only this campaign.")
@click.option("--json", "as_json", is_flag=True)
def status(project, launchpad, name, as_json) -> None:
    """Counts of Fireworks by state, per model, defect and charge."""
    from perovdefect.workflows.campaign import status as do_status
    out = do_status(project, launchpad, name)
    if as_json:
        echo_json(out)
        return
    click.echo(f"{out['total']} Fireworks: " + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(out["states"].items())))
    for model, labels in out["by_model"].items():
        click.echo(model)
        for label, states in labels.items():
            click.echo(f"  {label:14s} " + ", ".join(f"{k} {v}" for k, v in states.items()))


@campaign.command()
@project_opt
@launchpad_opt
@click.option("--fworker", type=click.Path(dir_okay=False), help="my_fworker.yaml (env: "
              "vasp_cmd, vasp_ncl_cmd, vasp_gam_cmd, pw_cmd, gpaw_cores).")
@click.option("--nlaunches", type=int, default=0, show_default=True, help="0: until done.")
def run(project, launchpad, fworker, nlaunches) -> None:
    """Run the READY Fireworks with `rlaunch rapidfire` in a worker process."""
    from perovdefect.workflows.campaign import run as do_run
    out = _progress_runner(do_run, project=project, launchpad_file=launchpad,
                           fworker_file=fworker, nlaunches=nlaunches)
    click.echo(f"done: {out['steps_with_results']}/{out['launched_steps']} steps have results")


@campaign.command()
@project_opt
@launchpad_opt
def rerun(project, launchpad) -> None:
    """Reset FIZZLED/lost Fireworks and run again (finished steps are not recomputed)."""
    from perovdefect.workflows.campaign import rerun as do_rerun
    out = _progress_runner(do_rerun, project=project, launchpad_file=launchpad)
    click.echo(f"reset {len(out['rerun_fizzled'])} fizzled, {len(out['rerun_lost'])} lost; "
               f"{out['steps_with_results']}/{out['launched_steps']} steps have results")


@campaign.command()
@project_opt
@launchpad_opt
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="results.json",
              show_default=True)
@click.option("--campaign", "name")
def collect(project, launchpad, output, name) -> None:
    """Write all step results and level analyses as one JSON table."""
    from perovdefect.workflows.campaign import collect as do_collect
    out = do_collect(project, launchpad, output, name)
    click.echo(f"{len(out['steps'])} steps, {len(out['analyses'])} analyses -> {output}")


@campaign.command()
@click.argument("campaign_file", type=click.Path())
@click.option("--scheduler", type=click.Choice(["slurm", "pbs"]), default="slurm")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="my_qadapter.yaml",
              show_default=True)
@click.option("--launchpad", type=click.Path(dir_okay=False), required=True)
@click.option("--fworker", type=click.Path(dir_okay=False), required=True)
def qadapter(campaign_file, scheduler, output, launchpad, fworker) -> None:
    """Write a FireWorks CommonAdapter queue file for qlaunch from the campaign's resources."""
    from perovdefect.workflows.queue import write_qadapter
    from perovdefect.workflows.spec import load_campaign
    path = write_qadapter(load_campaign(campaign_file).resources, scheduler, output, launchpad,
                          fworker)
    click.echo(f"wrote {path}; submit workers with: qlaunch -l {launchpad} -w {fworker} "
               f"-q {path} rapidfire")
