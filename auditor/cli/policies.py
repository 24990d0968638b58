"""The ``policies`` commands: ``check`` and ``validate``.

``check`` is what a CI pipeline runs before merge: Git manifests (``--desired``), a snapshot
(``--live FILE``) or, with neither, the live cluster, through every policy; text, JSON,
SARIF or a PolicyReport list out. Exit 0 nothing fails (at ``--fail-on`` or above), 1
something fails, 2 an error (including a policy that does not load or compile: the other
policies still ran and their results are printed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from auditor.cli.common import NO_CACHE_HELP, LazyChoice, guarded, load_config, parse_cache_dir
from auditor.errors import PolicyError

if TYPE_CHECKING:
    from auditor.policies.engine import Evaluation

FORMATS = ("text", "json", "sarif", "policyreport")


def _cluster_objects(cfg: Any) -> Iterator[dict[str, Any]]:
    from auditor.live.client import Cluster, ListStats, iter_live

    stats = ListStats()
    with Cluster(cfg.cluster) as cluster:
        for page in iter_live(cluster, cfg.scope, stats=stats):
            yield from page.items
    for problem in stats.problems:
        click.echo(f"warning: skipped {problem.where}: {problem.message}", err=True)


def _severities() -> tuple[str, ...]:
    from auditor.policies.model import SEVERITIES

    return tuple(SEVERITIES)


def render(evaluation: Evaluation, fmt: str, *, show_passing: bool = False) -> bytes:
    from auditor.policies import outputs

    results, policies, problems = evaluation.results, evaluation.policies, evaluation.problems
    if fmt == "json":
        return outputs.to_json(results, policies, problems)
    if fmt == "sarif":
        return outputs.to_sarif(results, policies, problems)
    if fmt == "policyreport":
        return outputs.to_policy_report(results, policies)
    return outputs.to_text(results, policies, problems, show_passing=show_passing).encode()


def exit_code(evaluation: Evaluation, fail_on: str = "low") -> int:
    if evaluation.problems or any(r.status == "error" for r in evaluation.results):
        return 2
    rank: dict[str, int] = {s: i for i, s in enumerate(_severities())}
    failing = any(r.status == "fail" and rank[r.severity] <= rank[fail_on]
                  for r in evaluation.results)
    return 1 if failing else 0


@click.group("policies")
def policies_group() -> None:
    """Compliance policies: check objects against them, validate policy files."""


@policies_group.command("check")
@click.option("--desired", "desired_path", metavar="PATH",
              help="Check Git manifests: a folder, or a repo path/URL (with --revision).")
@click.option("--revision", help="Branch, tag or sha when --desired is a repo.")
@click.option("--namespace", "-n", help="Namespace for namespaced manifests that name none.")
@click.option("--live", "live_file", metavar="FILE",
              help="Check a snapshot (a List as `kubectl get -o json` writes it, JSON or YAML, "
                   "or a folder of them). With neither --desired nor --live: the cluster.")
@click.option("--policies", "policies_dir", metavar="DIR",
              help="Policy folder or file (default: policies.directory).")
@click.option("-o", "--output", "fmt", type=click.Choice(FORMATS), default="text",
              show_default=True)
@click.option("--output-file", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Write the output here (default: stdout).")
@click.option("--fail-on", type=LazyChoice(_severities), default="low", show_default=True,
              help="Exit 1 only for failures of this severity or worse.")
@click.option("--show-passing", is_flag=True, help="Text output: list passing results too.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubeconfig file.")
@click.option("--context", "kube_context", help="kubeconfig context to use.")
@click.option("--no-cache", is_flag=True, help=NO_CACHE_HELP)
def check_cmd(desired_path: str | None, revision: str | None, namespace: str | None,
              live_file: str | None, policies_dir: str | None, fmt: str, output_file: str,
              fail_on: str, show_passing: bool, kubeconfig: str | None,
              kube_context: str | None, no_cache: bool) -> None:
    """Evaluate policies over Git manifests, a snapshot or the cluster."""
    code: list[int] = []

    def body() -> None:
        from auditor.desired.parsecache import ParseCache
        from auditor.desired.state import load_desired_state
        from auditor.engine.records import ResourceKey, SourceInfo
        from auditor.live.snapshot import read_snapshot
        from auditor.policies.engine import PolicyEngine, evaluate_objects

        overrides: dict[str, Any] = {}
        if kubeconfig or kube_context:
            overrides["cluster"] = {k: v for k, v in (("kubeconfig", kubeconfig),
                                                      ("context", kube_context)) if v}
        cfg = load_config(overrides)
        folder = policies_dir or cfg.policies.directory
        if not Path(folder).exists():
            raise PolicyError(f"{folder}: no policy folder here (set policies.directory or "
                              "pass --policies)")
        engine = PolicyEngine.load(folder, cfg.policies)
        objects: list[dict[str, Any]] = []
        sources: dict[ResourceKey, SourceInfo] = {}
        if desired_path:
            cache_dir = parse_cache_dir(no_cache)
            desired = load_desired_state(cfg, desired_path=desired_path, revision=revision,
                                         namespace=namespace, parse_cache=ParseCache(cache_dir)
                                         if cache_dir is not None else None)
            for key, item in desired.objects.items():
                objects.append(item.obj)
                sources[key] = item.source
            for problem in desired.problems:
                click.echo(f"warning: {problem.where}: {problem.message}", err=True)
        if live_file:
            objects.extend(read_snapshot(live_file))
        source: Any = objects if (desired_path or live_file) else _cluster_objects(cfg)
        evaluation = evaluate_objects(engine, source, sources=sources)
        data = render(evaluation, fmt, show_passing=show_passing)
        if output_file == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            Path(output_file).write_bytes(data)
        for bad in evaluation.problems:
            click.echo(f"drift-auditor: policy error: {bad}", err=True)
        code.append(exit_code(evaluation, fail_on))

    guarded(body)
    sys.exit(code[0] if code else 2)


@policies_group.command("validate")
@click.argument("folder", required=False, type=click.Path())
def validate_cmd(folder: str | None) -> None:
    """Check that every policy file in FOLDER (default: policies.directory) parses and
    compiles, and that configured exemptions are complete. Exit 0 all good, 2 otherwise."""
    code: list[int] = []

    def body() -> None:
        from auditor.policies.engine import PolicyEngine

        cfg = load_config()
        target = folder or cfg.policies.directory
        if not Path(target).exists():
            raise PolicyError(f"{target}: no such policy folder or file")
        engine = PolicyEngine.load(target, cfg.policies)
        for problem in engine.problems:
            click.echo(str(problem))
        ok = len(engine.compiled)
        skipped = [c.policy.name for c in engine.compiled if c.skip_reason]
        click.echo(f"{ok} policies OK, {len(engine.problems)} with errors"
                   + (f"; admission-only (reported as skipped): {', '.join(skipped)}"
                      if skipped else ""))
        code.append(2 if engine.problems else 0)

    guarded(body)
    sys.exit(code[0] if code else 2)


COMMANDS = (policies_group,)
