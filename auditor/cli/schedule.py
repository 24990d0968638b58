"""The ``schedule`` command: run drift-auditor commands on cron schedules (``schedule.jobs``),
each as a child process, so that one long-running pod holds the ledger's volume and runs the
audits itself beside ``serve`` and ``watch``."""

from __future__ import annotations

import os
import sys

import click

from auditor.cli.common import Context, handle_errors
from auditor.cli.durations import Duration


@click.command("schedule")
@click.option("--job", "job_names", metavar="NAME", multiple=True,
              help="Run only this job of schedule.jobs (repeatable; default: every job).")
@click.option("--run-now", is_flag=True,
              help="Start every selected job once right away, then follow the schedule.")
@click.option("--once", is_flag=True,
              help="Start every selected job now, wait for them and exit: 0 when all "
                   "succeeded, 1 otherwise (to run the pod's audit by hand).")
@click.option("--for", "duration", type=Duration(), metavar="DURATION",
              help="Stop after this long: 90s, 15m, 1h30m, PT2H or seconds (default: until "
                   "SIGTERM or Ctrl-C).")
@click.pass_obj
@handle_errors
def schedule_cmd(obj: Context, job_names: tuple[str, ...], run_now: bool, once: bool,
                 duration: float | None) -> None:
    """Run the jobs of schedule.jobs on their cron schedules, in one long-running process.

    Each fire starts `drift-auditor ARGS…` as a fresh child process with this environment
    (and this --config), as a CronJob with concurrencyPolicy Forbid would: a job whose
    previous run is still going is skipped for that fire, with a log line saying so. A run
    past its deadline-seconds gets SIGTERM, then SIGKILL 30 s later. Cron expressions have
    five fields (minute hour day-of-month month day-of-week) and are read in
    schedule.time-zone (default Etc/UTC).

    Fires missed while this process was not running are not caught up: after a restart each
    job waits for its next fire time (--run-now starts them all at once instead). Each start
    and finish is one log line (job, command, exit status, duration); a failed run is logged
    as an error and the schedule goes on. SIGTERM or Ctrl-C stops it cleanly: running jobs
    get SIGTERM and up to 30 s to finish, then the command exits 0.
    """
    import signal
    import threading

    from auditor.schedule import run_schedule, select

    cfg = obj.load()
    jobs = select(cfg.schedule, job_names)
    command = [sys.executable, "-m", "auditor.cli"]
    if obj.config_path:
        command += ["--config", obj.config_path]
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    outcome = run_schedule(jobs, tz=cfg.schedule.zone(), command=command, env=os.environ,
                           stop=stop, run_now=run_now, once=once)
    click.echo(f"schedule stopped: {outcome.started} runs started, {outcome.failed} failed, "
               f"{outcome.skipped} skipped (previous run still going), {outcome.deadline} "
               "stopped at their deadline", err=True)
    if once and outcome.failed:
        sys.exit(1)


COMMANDS = (schedule_cmd,)
