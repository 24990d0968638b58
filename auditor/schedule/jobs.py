"""The scheduled jobs: each configured ``schedule.jobs`` entry with its cron expression
parsed, narrowed to those ``--job`` names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditor.config import ScheduleConfig
from auditor.errors import ConfigError
from auditor.support import cron


@dataclass(frozen=True)
class Job:
    name: str
    cron: cron.Cron
    args: tuple[str, ...]
    deadline_seconds: float  # 0: none

    def describe(self) -> str:
        """The command line as a log line shows it."""
        return " ".join(["drift-auditor", *self.args])


def select(schedule: ScheduleConfig, names: Sequence[str] = ()) -> list[Job]:
    """The configured jobs (only those named, when ``names`` is given), in configuration
    order. No job at all, or a name not configured, is a :class:`ConfigError`."""
    configured = [Job(j.name, cron.parse(j.cron), j.args, j.deadline_seconds)
                  for j in schedule.jobs]
    if not configured:
        raise ConfigError("schedule.jobs: no job is configured (each needs a name, a cron "
                          "expression and the args of a drift-auditor command)")
    known = {j.name for j in configured}
    for name in names:
        if name not in known:
            raise ConfigError(f"--job {name!r}: no such job in schedule.jobs (jobs: "
                              f"{', '.join(sorted(known))})")
    return [j for j in configured if not names or j.name in names]
