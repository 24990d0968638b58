"""``drift-auditor schedule``: real child processes of real drift-auditor commands, started
at their cron fires (``--run-now``, and a clock run fast for the loop), skipped while the
previous run is still going, stopped at their deadline (SIGTERM, then SIGKILL), SIGTERM
forwarded on stop, and a bad ``schedule:`` section refused in one line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import config as config_mod
from auditor.cli import main
from auditor.errors import ConfigError
from auditor.schedule import Job, run_schedule, select
from auditor.support.cron import parse
from bench.report_bench import build_ledger

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schedule-ledger") / "ledger.db"
    build_ledger(path, start=datetime(2026, 3, 1, tzinfo=UTC),
                 end=datetime(2026, 3, 2, tzinfo=UTC), changes_per_run=2, objects=10,
                 outage=None, failed_at=None)
    return path


def _config(tmp: Path, ledger: Path, jobs: str, extra: str = "") -> Path:
    path = tmp / "drift-auditor.yaml"
    path.write_text(f"ledger: {{path: {ledger}}}\nreports: {{directory: {tmp / 'reports'}}}\n"
                    f"{extra}schedule:\n  jobs:\n{jobs}")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_AUDITOR_")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _schedule(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "auditor.cli", "--config", str(config),
                           "schedule", *args], capture_output=True, text=True, timeout=timeout,
                          env=_env(), cwd=config.parent)


def test_run_now_runs_real_commands_as_children(tmp_path: Path, ledger: Path) -> None:
    config = _config(tmp_path, ledger, """\
    - name: report
      cron: "0 0 1 1 *"  # only --run-now fires it within the test
      args: [report, --period, last-day, --format, all]
    - name: show
      cron: "0 0 1 1 *"
      args: [config]
""")
    proc = _schedule(config, "--run-now", "--for", "8")
    assert proc.returncode == 0, proc.stderr
    # The report job wrote its files into reports.directory: the child read the same
    # configuration file (--config passed through).
    reports = tmp_path / "reports"
    names = sorted(p.name for p in reports.iterdir())
    assert any(n.endswith(".html") for n in names), names
    assert any(n.endswith("-changes.csv") for n in names), names
    # The config job printed the effective configuration on our standard output.
    assert str(ledger) in proc.stdout and "# config hash:" in proc.stdout
    lines = proc.stderr.splitlines()
    for job, command in (("report", "drift-auditor report --period last-day --format all"),
                         ("show", "drift-auditor config")):
        started = [ln for ln in lines if f"job {job} started at start (--run-now)" in ln]
        finished = [ln for ln in lines if f"job {job} finished after " in ln]
        assert len(started) == 1 and started[0].endswith(command), lines
        assert len(finished) == 1 and f": exit 0: {command}" in finished[0], lines
        assert " INFO " in finished[0]
    assert "next at" in proc.stderr
    assert lines[-1].startswith("schedule stopped: 2 runs started, 0 failed"), lines[-1]


def test_once_runs_the_selected_jobs_waits_and_exits_with_their_outcome(
        tmp_path: Path, ledger: Path) -> None:
    config = _config(tmp_path, ledger, """\
    - name: show
      cron: "0 3 1 1 *"
      args: [config]
    - name: broken
      cron: "0 3 1 1 *"
      args: [report, --from, yesterday]
""")
    start = time.monotonic()
    ok = _schedule(config, "--once", "--job", "show")
    assert ok.returncode == 0, ok.stderr
    assert "# config hash:" in ok.stdout
    assert "job show started once (--once)" in ok.stderr and "broken" not in ok.stderr
    assert ok.stderr.splitlines()[-1].startswith("schedule stopped: 1 runs started, 0 failed")
    failed = _schedule(config, "--once")
    assert failed.returncode == 1, failed.stderr
    assert "schedule stopped: 2 runs started, 1 failed" in failed.stderr
    # It waited for the runs, not for the next fire (next January).
    assert time.monotonic() - start < 50


def test_a_failing_run_is_an_error_line_and_the_schedule_goes_on(tmp_path: Path,
                                                                 ledger: Path) -> None:
    config = _config(tmp_path, ledger, """\
    - name: broken
      cron: "0 0 1 1 *"  # only --run-now fires it within the test
      args: [report, --from, yesterday]
""")
    proc = _schedule(config, "--run-now", "--for", "4")
    assert proc.returncode == 0, proc.stderr
    error = [ln for ln in proc.stderr.splitlines() if "job broken finished" in ln]
    assert len(error) == 1 and " ERROR " in error[0] and ": exit 2: " in error[0], proc.stderr
    assert "is not a date" in proc.stderr  # the child's own error line, in the same log
    assert "1 runs started, 1 failed" in proc.stderr


def test_a_run_past_its_deadline_is_stopped(tmp_path: Path, ledger: Path) -> None:
    config = _config(tmp_path, ledger, """\
    - name: server
      cron: "0 0 1 1 *"  # only --run-now fires it within the test
      args: [serve, --port, "0"]
      deadline-seconds: 2
""")
    began = time.monotonic()
    proc = _schedule(config, "--run-now", "--for", "6")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - began < 30
    lines = proc.stderr.splitlines()
    passed = [ln for ln in lines if "job server passed its deadline of 2s" in ln]
    assert len(passed) == 1 and "SIGTERM sent, SIGKILL in 30s" in passed[0], lines
    finished = [ln for ln in lines if "job server finished after" in ln]
    assert len(finished) == 1 and "(stopped at its deadline of 2s)" in finished[0], lines
    assert " ERROR " in finished[0]
    # It ran about its deadline, not until --for.
    elapsed = float(finished[0].split("finished after ")[1].split("s:")[0])
    assert 2 <= elapsed < 5
    assert "1 stopped at their deadline" in lines[-1]


def test_sigterm_is_forwarded_to_running_children(tmp_path: Path, ledger: Path) -> None:
    config = _config(tmp_path, ledger, """\
    - name: server
      cron: "0 0 1 1 *"
      args: [serve, --port, "0"]
""")
    log = tmp_path / "schedule.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "auditor.cli", "--config", str(config),
                                 "schedule", "--run-now"], stdout=subprocess.DEVNULL,
                                stderr=err, env=_env(), cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while "drift-auditor serve: http" not in log.read_text():
                assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
                time.sleep(0.1)
            text = log.read_text()
            child = int(text.split("job server started at start (--run-now) (pid ")[1]
                        .split(")")[0])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert f"stopping: SIGTERM to job server (pid {child}), up to 30s to finish" in text
    assert "job server finished after" in text and ": exit 0: drift-auditor serve" in text
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)


# --------------------------------------------------------------------------- the loop


def _fast_clock(start: datetime, speed: float) -> Callable[[], datetime]:
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=(time.monotonic() - origin) * speed)


def _run_loop(jobs: list[Job], command: list[str], seconds: float, **kwargs: object) -> object:
    stop = threading.Event()
    result: dict[str, object] = {}

    def target() -> None:
        result["outcome"] = run_schedule(jobs, tz=UTC, command=command, env=_env(), stop=stop,
                                         tick=0.05, **kwargs)  # type: ignore[arg-type]

    thread = threading.Thread(target=target)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join(timeout=60)
    assert not thread.is_alive()
    return result["outcome"]


def test_a_job_still_running_is_skipped_at_its_next_fire(tmp_path: Path, ledger: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    config = _config(tmp_path, ledger, "    []\n")
    command = [sys.executable, "-m", "auditor.cli", "--config", str(config)]
    job = Job("server", parse("* * * * *"), ("serve", "--port", "0"), 0)
    # A minute a second: fires at 0.5 s, 1.5 s, 2.5 s, 3.5 s of real time.
    clock = _fast_clock(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC), 60)
    with caplog.at_level(logging.INFO, logger="auditor.schedule"):
        outcome = _run_loop([job], command, 4.0, clock=clock)
    assert outcome.started == 1, caplog.text  # type: ignore[attr-defined]
    assert outcome.skipped >= 2, caplog.text  # type: ignore[attr-defined]
    skips = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert skips and skips[0].levelno == logging.WARNING
    assert "job server skipped for 2026-01-01T00:02:00+00:00: its run started" in \
        skips[0].getMessage()
    assert "is still going (concurrency: forbid): drift-auditor serve --port 0" in \
        skips[0].getMessage()
    started = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("job server started")]
    assert started == [started[0]] and "for 2026-01-01T00:01:00+00:00" in started[0]


def test_sigkill_after_the_grace_when_sigterm_is_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "time.sleep(60)")
    job = Job("stubborn", parse("0 0 1 1 *"), ("arg",), 1)
    with caplog.at_level(logging.INFO, logger="auditor.schedule"):
        outcome = _run_loop([job], [sys.executable, "-c", stubborn], 3.5, run_now=True,
                            kill_grace=1.0)
    assert outcome.deadline == 1 and outcome.failed == 1  # type: ignore[attr-defined]
    text = caplog.text
    assert "job stubborn passed its deadline of 1s" in text
    assert "job stubborn still running 1s after SIGTERM" in text and "SIGKILL sent" in text
    assert "killed by SIGKILL (stopped at its deadline of 1s)" in text


def test_stop_kills_what_ignores_sigterm_after_the_grace(
        caplog: pytest.LogCaptureFixture) -> None:
    stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "time.sleep(60)")
    job = Job("stubborn", parse("0 0 1 1 *"), (), 0)
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger="auditor.schedule"):
        _run_loop([job], [sys.executable, "-c", stubborn], 0.5, run_now=True, kill_grace=1.0)
    assert time.monotonic() - began < 10
    assert "stopping: SIGTERM to job stubborn" in caplog.text
    assert "killed by SIGKILL" in caplog.text


# --------------------------------------------------------------------------- configuration


def test_job_selection() -> None:
    cfg = config_mod.ScheduleConfig(jobs=(
        config_mod.ScheduleJob("audit", "*/15 * * * *", ("run",), 840),
        config_mod.ScheduleJob("report", "0 2 1 * *", ("report", "--period", "last-month"))))
    assert [j.name for j in select(cfg)] == ["audit", "report"]
    assert [j.name for j in select(cfg, ["report"])] == ["report"]
    with pytest.raises(ConfigError, match=r"--job 'nope': no such job in schedule.jobs "
                                          r"\(jobs: audit, report\)"):
        select(cfg, ["nope"])
    with pytest.raises(ConfigError, match=r"schedule\.jobs: no job is configured"):
        select(config_mod.ScheduleConfig())


@pytest.mark.parametrize(("section", "message"), [
    ("schedule: {time-zone: Mars/Olympus}",
     "schedule.time-zone: 'Mars/Olympus' is not a time zone"),
    ("schedule: {timezone: UTC}", "schedule.timezone: unknown key (expected one of: jobs, "
                                  "time-zone)"),
    ("schedule: {jobs: [{name: a, cron: '61 * * * *', args: [run]}]}",
     "schedule.jobs[0].cron: cron '61 * * * *': minute '61' is out of range (0-59)"),
    ("schedule: {jobs: [{name: a, cron: '* * * *', args: [run]}]}",
     "schedule.jobs[0].cron: cron '* * * *': expected five fields"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *', args: [run], colour: red}]}",
     "schedule.jobs[0].colour: unknown key (expected one of: args, cron, deadline-seconds, "
     "name)"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *'}]}",
     "schedule.jobs[0].args: []: name the drift-auditor command to run"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *', args: [schedule]}]}",
     "a scheduled job cannot run the scheduler itself"),
    ("schedule: {jobs: [{name: Audit_1, cron: '* * * * *', args: [run]}]}",
     "schedule.jobs[0].name: 'Audit_1' is not a job name"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *', args: [run]}, "
     "{name: a, cron: '0 * * * *', args: [run]}]}",
     "schedule.jobs[1].name: 'a' is the name of an earlier job"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *', args: [run], deadline-seconds: soon}]}",
     "schedule.jobs[0].deadline-seconds: expected a number, got 'soon'"),
    ("schedule: {jobs: [{name: a, cron: '* * * * *', args: [run], deadline-seconds: -1}]}",
     "schedule.jobs[0].deadline-seconds: -1.0 is negative"),
    ("schedule: {jobs: {name: a}}", "schedule.jobs: expected a list of a mapping"),
    ("schedule: {}", "schedule.jobs: no job is configured"),
])
def test_a_bad_schedule_is_one_line_and_exit_2(tmp_path: Path, section: str,
                                               message: str) -> None:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text(section + "\n")
    result = CliRunner().invoke(main, ["--config", str(config), "schedule", "--for", "0"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith(f"drift-auditor: error: {config}: ") or \
        lines[0].startswith("drift-auditor: error: schedule.jobs: no job"), lines[0]
    assert message in lines[0]


def test_an_unknown_job_name_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "drift-auditor.yaml"
    config.write_text("schedule: {jobs: [{name: audit, cron: '* * * * *', args: [run]}]}\n")
    result = CliRunner().invoke(main, ["--config", str(config), "schedule", "--job", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == ("drift-auditor: error: --job 'nope': no such job in "
                                     "schedule.jobs (jobs: audit)")
