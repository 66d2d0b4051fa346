"""`perovdefect campaign submit|status|run|rerun|collect|qadapter`.

Every number and path is validated before anything runs (click types: existing files, ranges,
durations); a bad one is a one-line `error: ...` naming the option, exit code 2. Only `submit`
creates a project folder; outputs are never overwritten without --force."""

from __future__ import annotations

import os

import click

from perovdefect.cli.common import ErrorGroup, NumberParam, echo_json, output_file


class Duration(NumberParam):
    """A duration: seconds, or a number with s, m, h or d (30m, 4h, 2d); > 0 s."""

    name = "duration"
    min, min_open = 0.0, True

    def convert(self, value, param, ctx) -> float:
        from perovdefect.errors import CampaignError
        from perovdefect.workflows.campaign import parse_duration
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value)
        except CampaignError as exc:
            self.fail(str(exc), param, ctx)


def _existing_file() -> click.Path:
    """An existing, readable file (not a folder)."""
    return click.Path(exists=True, dir_okay=False, readable=True)


project_opt = click.option(
    "--project", type=click.Path(file_okay=False), default=lambda: os.environ.get(
        "PEROVDEFECT_PROJECT", "perovdefect-project"), show_default="perovdefect-project",
    help="Project folder (embedded LaunchPad store, run directories); made by `submit` only.")
launchpad_opt = click.option("--launchpad", "launchpad", type=_existing_file(),
                             help="my_launchpad.yaml of a MongoDB LaunchPad (default: embedded).")
lost_after_opt = click.option(
    "--lost-after", type=Duration(), default="4h", show_default=True,
    help="MongoDB: a RUNNING step whose worker has not pinged for this long is lost "
         "(FireWorks' detect_lostruns; workers ping every PING_TIME_SECS, 1 h by default). "
         "Seconds or 30m, 4h, 2d.")
reserved_after_opt = click.option(
    "--reserved-after", type=Duration(), default="14d", show_default=True,
    help="MongoDB: a RESERVED step (qlaunch job queued) not updated for this long is lost "
         "(FireWorks' detect_unreserved).")


def _progress_runner(fn, **kw):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as progress:
        task = progress.add_task("steps", total=None)

        def update(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total,
                            description=(label.split("/", 1)[-1] if label else "steps"))
        return fn(progress=update, **kw)


def _warn_short_expiry(launchpad: str | None, lost_after: float) -> None:
    """A healthy worker pings only every PING_TIME_SECS: a shorter --lost-after would take it
    for lost. Said on stderr (the command still runs: tests and short pings are legitimate)."""
    if not launchpad:
        return
    from fireworks.fw_config import PING_TIME_SECS
    if lost_after < PING_TIME_SECS:
        from perovdefect.workflows.campaign import format_duration
        click.echo(f"warning: --lost-after {format_duration(lost_after)} is shorter than "
                   f"FireWorks' ping interval (PING_TIME_SECS = {PING_TIME_SECS:g} s here): a "
                   "healthy worker that has not pinged yet counts as lost", err=True)


def _fw_line(fw: dict) -> str:
    where = f" on {fw['host']}" if fw.get("host") else ""
    seen = f", last update {fw['last_update']}" if fw.get("last_update") else ""
    return f"  fw {fw['fw_id']} {fw['name']} ({fw['state']}{where}{seen})"


@click.group(cls=ErrorGroup)
def campaign() -> None:
    """FireWorks campaigns: many defects x charges x functionals."""


@campaign.command()
@click.argument("campaign_file", type=_existing_file())
@project_opt
@launchpad_opt
@click.option("--json", "as_json", is_flag=True)
def submit(campaign_file, project, launchpad, as_json) -> None:
    """Validate CAMPAIGN_FILE (YAML), build every model's workflow, then add the new ones
    (models already present are skipped; if any model fails to build, nothing is added)."""
    from perovdefect.workflows.campaign import submit as do_submit
    out = do_submit(campaign_file, project, launchpad)
    if as_json:
        echo_json(out)
    else:
        click.echo(f"campaign {out['campaign']}: added {len(out['added'])} model workflow(s) "
                   f"({out['fireworks_added']} Fireworks) {out['added']}; already present: "
                   f"{out['already_present']}")


@campaign.command()
@project_opt
@launchpad_opt
@click.option("--campaign", "name", help="Only this campaign.")
@lost_after_opt
@reserved_after_opt
@click.option("--json", "as_json", is_flag=True)
def status(project, launchpad, name, lost_after, reserved_after, as_json) -> None:
    """Counts of Fireworks by state, per model, defect and charge; suspected lost runs."""
    from perovdefect.workflows.campaign import status as do_status
    _warn_short_expiry(launchpad, lost_after)
    out = do_status(project, launchpad, name, lost_after, reserved_after)
    if as_json:
        echo_json(out)
        return
    click.echo(f"{out['total']} Fireworks: " + ", ".join(f"{k} {v}" for k, v in
                                                         sorted(out["states"].items())))
    for model, labels in out["by_model"].items():
        click.echo(model)
        for label, states in labels.items():
            click.echo(f"  {label:14s} " + ", ".join(f"{k} {v}" for k, v in states.items()))
    lost = out["suspected_lost"]
    if lost:
        why = ("no worker can run while this command holds the embedded store" if not launchpad
               else f"no ping for {out['lost_after']}")
        click.echo(f"suspected lost ({why}); `perovdefect campaign rerun` resets them:")
        for fw in lost:
            click.echo(_fw_line(fw))


@campaign.command()
@project_opt
@launchpad_opt
@click.option("--fworker", type=_existing_file(), help="my_fworker.yaml (env: "
              "vasp_cmd, vasp_ncl_cmd, vasp_gam_cmd, pw_cmd, gpaw_cores).")
@click.option("--nlaunches", type=click.IntRange(min=0), default=0, show_default=True,
              help="0: until done.")
def run(project, launchpad, fworker, nlaunches) -> None:
    """Run the READY Fireworks with `rlaunch rapidfire` in a worker process."""
    from perovdefect.workflows.campaign import run as do_run
    from perovdefect.workflows.store import require_project
    require_project(project)  # before the progress bar starts
    out = _progress_runner(do_run, project=project, launchpad_file=launchpad,
                           fworker_file=fworker, nlaunches=nlaunches)
    click.echo(f"done: {out['steps_with_results']}/{out['launched_steps']} steps have results")
    _report_fizzled(out)


def _report_fizzled(out: dict) -> None:
    """Name every FIZZLED step with its error; exit 1 if there is one."""
    bad = out.get("fizzled") or []
    for fw in bad:
        click.echo(f"FIZZLED {fw['name']} (fw_id {fw['fw_id']}): {fw['error']}", err=True)
    if bad:
        click.echo(f"{len(bad)} step(s) failed; fix the cause, then `perovdefect campaign rerun` "
                   "(finished steps are not recomputed)", err=True)
        raise SystemExit(1)


@campaign.command()
@project_opt
@launchpad_opt
@click.option("--fworker", type=_existing_file(), help="my_fworker.yaml.")
@lost_after_opt
@reserved_after_opt
@click.option("--no-run", is_flag=True, help="Only reset; let running workers pick them up.")
@click.option("--json", "as_json", is_flag=True)
def rerun(project, launchpad, fworker, lost_after, reserved_after, no_run, as_json) -> None:
    """Reset FIZZLED and lost Fireworks, then run (finished steps are not recomputed).

    Embedded store: RUNNING/RESERVED steps are lost (no worker can exist under its lock).
    MongoDB: only those FireWorks reports lost after --lost-after/--reserved-after; the others
    are left alone and listed."""
    from perovdefect.workflows.campaign import rerun as do_rerun
    from perovdefect.workflows.store import require_project
    if not (launchpad and no_run):
        require_project(project)  # before the progress bar starts
    _warn_short_expiry(launchpad, lost_after)
    kw = dict(project=project, launchpad_file=launchpad, lost_after=lost_after,
              reserved_after=reserved_after, fworker_file=fworker, run_worker=not no_run)
    out = do_rerun(**kw) if no_run or as_json else _progress_runner(do_rerun, **kw)
    if as_json:
        echo_json(out)
        if out.get("fizzled"):
            raise SystemExit(1)
        return
    click.echo(f"reset {len(out['rerun_fizzled'])} fizzled, {len(out['rerun_lost'])} lost, "
               f"{len(out['rerun_unreserved'])} expired reservation(s)")
    if out["left_alone"]:
        click.echo(f"left alone {len(out['left_alone'])} RUNNING/RESERVED step(s) whose worker "
                   f"pinged within {out['lost_after']} (reservations: {out['reserved_after']}):")
        for fw in out["left_alone"]:
            click.echo(_fw_line(fw))
    if "launched_steps" in out:
        click.echo(f"done: {out['steps_with_results']}/{out['launched_steps']} steps have "
                   "results")
        _report_fizzled(out)


@campaign.command()
@project_opt
@launchpad_opt
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              default="results.json", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--campaign", "name")
def collect(project, launchpad, output, force, name) -> None:
    """Write all step results and level analyses as one JSON table."""
    from perovdefect.workflows.campaign import collect as do_collect
    output_file(output, force, "--output", make_folder=False)
    out = do_collect(project, launchpad, output, name, force=force)
    timed = out.step_wall_times()
    click.echo(f"{len(out.steps)} steps, {len(out.analyses)} analyses -> {output}; "
               f"{len(timed)} finished calculation steps took {out.wall_time_s() / 3600:.2f} h "
               "of wall time (luminescence chains not included)")


@campaign.command()
@click.argument("campaign_file", type=_existing_file())
@click.option("--scheduler", type=click.Choice(["slurm", "pbs"]), default="slurm",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              default="my_qadapter.yaml", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--launchpad", type=_existing_file(), required=True)
@click.option("--fworker", type=_existing_file(), required=True)
def qadapter(campaign_file, scheduler, output, force, launchpad, fworker) -> None:
    """Write a FireWorks CommonAdapter queue file for qlaunch from the campaign's resources."""
    from perovdefect.workflows.queue import write_qadapter
    from perovdefect.workflows.spec import load_campaign
    output_file(output, force, "--output", make_folder=False)  # before reading anything
    resources = load_campaign(campaign_file).resources
    path = write_qadapter(resources, scheduler, output, launchpad, fworker, force=force)
    click.echo(f"wrote {path}; submit workers with: qlaunch -l {launchpad} -w {fworker} "
               f"-q {path} rapidfire")
