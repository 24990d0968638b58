"""The command line's shared grammar: one object reference for `ack`, `adopt` and
`history --object` (kubectl's forms included), global flags after the subcommand, NO_COLOR,
`-q` and progress, durations, `-o` as a format, `config`'s key spelling and the YAML 1.1
`on` message, shell completion."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result

from auditor.cli import main
from auditor.cli.adopt import resolve
from auditor.cli.durations import parse_duration
from auditor.engine import objectref
from auditor.engine.records import ObjectResult, ResourceKey, SourceInfo
from auditor.ledger import Ledger
from tests.ledger.helpers import at, drifted, key, obs

ROOT = Path(__file__).resolve().parents[2]

WEB = key("web")                                                   # Deployment.apps shop/web
OTHER_WEB = key("web", ns="billing")                               # the same name elsewhere
ADMIN = key("admin", "ClusterRole", "rbac.authorization.k8s.io", "")
SETTINGS = key("settings", "ConfigMap", "", "shop")
GADGET = key("gadget", "Widget", "example.com", "shop")            # a custom resource
OBJECTS = (WEB, OTHER_WEB, ADMIN, SETTINGS, GADGET)

# Every documented form, with the -n it is given with, and the object it names.
FORMS: list[tuple[tuple[str, ...], ResourceKey]] = [
    (("deploy/web", "-n", "shop"), WEB),
    (("deployment/web", "-n", "shop"), WEB),
    (("deployments/web", "-n", "shop"), WEB),
    (("Deployment.apps/shop/web",), WEB),
    (("deployments.apps/shop/web",), WEB),
    (("Deployment/shop/web",), WEB),
    (("Deployment.apps shop/web",), WEB),
    (("Deployment.apps", "shop/web"), WEB),
    (("deploy", "web", "-n", "shop"), WEB),
    (("shop/web",), WEB),
    (("web", "-n", "shop"), WEB),
    (("clusterrole/admin",), ADMIN),
    (("clusterroles/admin", "-n", "shop"), ADMIN),  # -n does not apply, as in kubectl
    (("ClusterRole.rbac.authorization.k8s.io/admin",), ADMIN),
    (("ClusterRole", "admin"), ADMIN),
    (("cm/settings", "-n", "shop"), SETTINGS),
    (("ConfigMap shop/settings",), SETTINGS),
    (("widget/gadget", "-n", "shop"), GADGET),
    (("widgets.example.com/shop/gadget",), GADGET),
    (("Widget/shop/gadget",), GADGET),
]

BAD_FORMS: list[tuple[tuple[str, ...], str]] = [
    (("a/b/c/d",), "expected TYPE/NAME"),
    (("shop/Deployment.apps/web",), "did you mean Deployment.apps/shop/web?"),
    (("Deployment./web",), "expected a Kind, Kind.group"),
    (("deploy/web/",), "expected TYPE/NAME"),
    (("ClusterRole/shop/admin",), "is cluster-scoped"),
    (("Deployment.apps/shop/web", "-n", "billing"), "-n says 'billing'"),
    (("Deployment.apps", "shop/web", "extra"), "expected TYPE/NAME"),
    (("deploy", "a/b/c"), "expected TYPE/NAME"),
    (("Shop_/web", "x"), "expected TYPE/NAME"),
]


def _ledger(tmp: Path) -> tuple[Path, Path]:
    """A ledger with one open drift on each of :data:`OBJECTS`, and a config naming it."""
    db = tmp / "ledger.db"
    with Ledger.open(db, sign=False) as ledger:
        run = ledger.begin_run(started_at=at(0))
        for k in OBJECTS:
            run.observe(obs(k, {"replicas": 5}))
            run.record(drifted(k, ("spec.replicas", 3, 5)))
        run.finish()
    cfg = tmp / "drift-auditor.yaml"
    cfg.write_text(f"ledger:\n  path: {db}\n  sign: false\n")
    return db, cfg


def _cli(cfg: Path | None, *args: str, env: dict[str, str] | None = None,
         color: bool = False) -> Result:
    pre = ["--config", str(cfg)] if cfg else []
    return CliRunner().invoke(main, [*pre, *args], prog_name="drift-auditor",
                              env={"KUBECONFIG": "/nonexistent", **(env or {})}, color=color)


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("drift-auditor: error: "), lines
    return lines[0]


def _history_objects(cfg: Path, *args: str) -> set[ResourceKey]:
    result = _cli(cfg, "history", *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return {ResourceKey(e["api_group"], e["kind"], e["namespace"], e["name"])
            for e in orjson.loads(result.output)}


def _split(form: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The reference's words and the -n flag, apart."""
    if "-n" in form:
        i = form.index("-n")
        return list(form[:i]), list(form[i:i + 2])
    return list(form), []


@pytest.fixture(scope="module")
def ledger_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _ledger(tmp_path_factory.mktemp("grammar"))[1]


# ------------------------------------------------------------------ object references


@pytest.mark.parametrize(("form", "expected"), FORMS, ids=[" ".join(f) for f, _ in FORMS])
def test_every_form_names_the_same_object_in_history_ack_and_adopt(
        form: tuple[str, ...], expected: ResourceKey, ledger_config: Path,
        tmp_path: Path) -> None:
    words, flag = _split(form)
    # history --object: one argument (the two-word form quoted)
    assert _history_objects(ledger_config, "--object", " ".join(words), *flag) == {expected}
    # ack: one argument or two; a fresh ledger each time
    _db, cfg = _ledger(tmp_path)
    result = _cli(cfg, "ack", *form, "--by", "ann", "--reason", "test")
    assert result.exit_code == 0, result.output
    assert f"({expected}) accepted by ann" in result.output
    # adopt: resolved against the comparison's objects, spelt for the workflow exactly
    results = [ObjectResult(k, "v1", "drifted", (), SourceInfo("x.yaml")) for k in OBJECTS]
    namespace = flag[1] if flag else None
    target = resolve(objectref.parse(words, namespace, allow_id=True), " ".join(words), results)
    from auditor.adopt.workflow import _matches, parse_object

    assert [k for k in OBJECTS if _matches(k, parse_object(target))] == [expected]


@pytest.mark.parametrize(("form", "message"), BAD_FORMS, ids=[" ".join(f) for f, _ in BAD_FORMS])
def test_a_bad_form_is_one_line_and_exit_2_everywhere(form: tuple[str, ...], message: str,
                                                      ledger_config: Path) -> None:
    words, flag = _split(form)
    for args in (("ack", *form, "--by", "ann", "--reason", "x"),
                 ("adopt", *form, "--dry-run"),
                 ("history", "--object", " ".join(words), *flag)):
        line = _one_error_line(_cli(ledger_config, *args))
        assert message in line, (args, line)
        assert ("--object" if args[0] == "history" else "OBJECT") in line


def test_history_no_longer_answers_an_unread_form_with_no_history(ledger_config: Path) -> None:
    line = _one_error_line(_cli(ledger_config, "history", "--object", "x/y/z/w"))
    assert "--object 'x/y/z/w'" in line and "no matching history" not in line


def test_names_alone_and_ambiguity(ledger_config: Path, tmp_path: Path) -> None:
    assert _history_objects(ledger_config, "--object", "web") == {WEB, OTHER_WEB}
    assert _history_objects(ledger_config, "--object", "deploy/web") == {WEB, OTHER_WEB}
    _db, cfg = _ledger(tmp_path)
    line = _one_error_line(_cli(cfg, "ack", "web", "--by", "a", "--reason", "x"))
    assert "matches several open drifts" in line and "billing/web" in line
    assert "accepted" in _cli(cfg, "ack", "1", "--by", "a", "--reason", "x").output


def test_the_parser_resolves_kubectl_names_to_group_and_kind() -> None:
    for name in ("deploy", "deployments", "deployment", "Deployment", "deployments.apps"):
        assert objectref.parse_type(name)[:2] == ("Deployment", "apps"), name
    for short, kind in (("svc", "Service"), ("cm", "ConfigMap"), ("sa", "ServiceAccount"),
                        ("ns", "Namespace"), ("sts", "StatefulSet"), ("ds", "DaemonSet"),
                        ("cj", "CronJob"), ("ing", "Ingress"), ("netpol", "NetworkPolicy"),
                        ("pdb", "PodDisruptionBudget"), ("hpa", "HorizontalPodAutoscaler"),
                        ("pvc", "PersistentVolumeClaim"), ("crd", "CustomResourceDefinition")):
        assert objectref.parse_type(short)[0] == kind, short
    # Two groups serve Event: the kind is known, the group is not.
    assert objectref.parse_type("events") == ("Event", None, None)
    assert objectref.parse_type("Event.events.k8s.io") == ("Event", "events.k8s.io", None)
    # Not built in: matched by name as typed.
    assert objectref.parse_type("widgets") == (None, None, "widgets")
    ref = objectref.parse(["ns/kube-system"])
    assert (ref.kind, ref.namespace, ref.name) == ("Namespace", "", "kube-system")


# ------------------------------------------------------------------ global flags


def test_global_flags_after_the_subcommand(ledger_config: Path) -> None:
    before = _cli(ledger_config, "-q", "history", "--object", "deploy/web", "-n", "shop",
                  "-o", "json")
    after = _cli(None, "history", "--object", "deploy/web", "-n", "shop", "-o", "json",
                 "--config", str(ledger_config), "-q", "-v")
    assert before.exit_code == after.exit_code == 0, after.output
    assert before.output == after.output
    # Without --config anywhere the default ledger is not there: the flag really was used.
    missing = _cli(None, "history", env={"DRIFT_AUDITOR_LEDGER_PATH": "/nonexistent/l.db"})
    assert missing.exit_code == 2
    # Documented in every command's help, and the root's.
    for args in (("history", "--help"), ("report", "sample", "--help"), ("--help",)):
        text = _cli(None, *args).output
        assert "--config" in text and "--quiet" in text and "--verbose" in text, args
    assert "also follow the subcommand" in _cli(None, "--help").output
    assert "also accepted after the subcommand" in _cli(None, "ack", "--help").output


def test_quiet_after_the_subcommand_hides_progress(tmp_path: Path, kubeconfig: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.support import progress

    shown: list[bool] = []
    real_init = progress.Progress.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        shown.append(self.enabled)

    monkeypatch.setattr(progress.Progress, "__init__", spy)
    env = {"KUBECONFIG": str(kubeconfig), "DRIFT_AUDITOR_LEDGER_PATH": str(tmp_path / "l.db")}
    out = tmp_path / "live.json"
    for flags, enabled in (((), True), (("-q",), False)):
        shown.clear()
        result = CliRunner().invoke(main, ["--config", "/dev/null", "snapshot",
                                           "--output-file", str(out), *flags], env=env)
        assert result.exit_code == 0, result.output
        assert shown == [enabled], flags


# ------------------------------------------------------------------ colour


def _diff_fixture(tmp_path: Path) -> list[str]:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                     "  name: app\n  namespace: shop\ndata:\n  mode: blue\n")
    live = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "app", "namespace": "shop", "uid": "u1",
                      "resourceVersion": "3"}, "data": {"mode": "green"}}]}
    (tmp_path / "live.json").write_bytes(orjson.dumps(live))
    return ["diff", "--desired", str(desired), "--live", str(tmp_path / "live.json"),
            "--no-cache"]


def test_no_color_turns_colour_off_unless_a_flag_says_otherwise(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditor.cli import common

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert common.use_color(None) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert common.use_color(None) is False
    assert common.use_color(True) is True
    monkeypatch.setenv("NO_COLOR", "")  # empty: not set, per no-color.org
    assert common.use_color(None) is True
    args = _diff_fixture(tmp_path)
    # color=True: the runner keeps what the command wrote, as a terminal would get it.
    coloured = _cli(Path("/dev/null"), *args, "--color", env={"NO_COLOR": "1"}, color=True)
    assert coloured.exit_code == 1 and "\x1b[" in coloured.output, coloured.output
    plain = _cli(Path("/dev/null"), *args, env={"NO_COLOR": "1"}, color=True)
    assert plain.exit_code == 1 and "\x1b[" not in plain.output


# ------------------------------------------------------------------ durations


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("1w", 604800),
    ("PT1H30M", 5400), ("P1DT12H", 129600), ("pt90s", 90), ("1w2d3h4m5s", 788645)])
def test_one_duration_grammar(text: str, seconds: int) -> None:
    delta = parse_duration(text)
    assert delta is not None and delta.total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "1x", "h1", "PT", "P", "1.5h", "1h 30m", "30m1h"])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_durations_on_every_option(ledger_config: Path, tmp_path: Path) -> None:
    # --since with a compound duration; an ISO 8601 one
    assert _history_objects(ledger_config, "--since", "5200w1h30m") == set(OBJECTS)
    assert _history_objects(ledger_config, "--since", "P36500D") == set(OBJECTS)
    assert _history_objects(ledger_config, "--since", "1h30m") == set()
    bad = _cli(ledger_config, "history", "--since", "1h30")
    assert bad.exit_code == 2
    assert "Invalid value for '--since'" in bad.output and "'1h30'" in bad.output
    # ack --expires: the absolute expiry in UTC in the confirmation line
    _db, cfg = _ledger(tmp_path)
    before = datetime.now(UTC).replace(microsecond=0)
    result = _cli(cfg, "ack", "deploy/web", "-n", "shop", "--by", "ann", "--reason", "x",
                  "--expires", "1h30m")
    assert result.exit_code == 0, result.output
    until = result.output.split(" until ")[1].split()[0]
    moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
    assert until.endswith("Z") and timedelta(minutes=89) < moment - before < timedelta(minutes=91)
    bad = _cli(cfg, "ack", "1", "--by", "ann", "--reason", "x", "--expires", "soon")
    assert bad.exit_code == 2 and "Invalid value for '--expires'" in bad.output
    assert "'soon'" in bad.output
    # --for and --wait
    for args in (("watch", "--for", "2x"), ("schedule", "--for", "2x"),
                 ("ack", "1", "--by", "a", "--reason", "x", "--wait", "2x")):
        bad = _cli(cfg, *args)
        assert bad.exit_code == 2 and "'2x' is not a duration" in bad.output, args
    from auditor.cli.durations import Duration

    assert Duration().convert("1h30m", None, None) == 5400.0
    assert Duration().convert("2.5", None, None) == 2.5


# ------------------------------------------------------------------ -o is a format


def test_o_is_a_format_and_the_file_is_output_file(ledger_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    new = _cli(ledger_config, "report", "--from", "2000-01-01", "-o", "json",
               "--output-file", str(out), "--skip-verify")
    assert new.exit_code == 0, new.output
    assert orjson.loads(out.read_bytes())["header"]
    assert "deprecated" not in new.output
    # The old spellings still work for one release, with a one-line warning.
    old = tmp_path / "old.json"
    legacy = _cli(ledger_config, "report", "--from", "2000-01-01", "--format", "json",
                  "--output", str(old), "--skip-verify")
    assert legacy.exit_code == 0, legacy.output
    assert old.exists()
    assert "drift-auditor: warning: --output is deprecated" in legacy.output
    older = tmp_path / "older.json"
    legacy = _cli(ledger_config, "report", "--from", "2000-01-01", "--format", "json",
                  "-o", str(older), "--skip-verify")
    assert legacy.exit_code == 0 and older.exists(), legacy.output
    assert "-o FILE is deprecated" in legacy.output
    bad = _cli(ledger_config, "report", "--from", "2000-01-01", "-o", "pdf")
    assert bad.exit_code == 2 and "--output-file" in bad.output
    # Hidden: --help shows the new spellings only.
    for args in (("report",), ("report", "sample"), ("snapshot",)):
        text = _cli(None, *args, "--help").output
        assert "--output " not in text and "-o FILE" not in text
        assert "--output-file" in text or "--output-dir" in text


# ------------------------------------------------------------------ config


def test_config_prints_keys_as_the_file_spells_them(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("slack:\n  token-env: SLACK_TOKEN\n")
    result = _cli(cfg, "config")
    assert result.exit_code == 0, result.output
    assert "token-env: SLACK_TOKEN" in result.output and "token_env" not in result.output
    assert "in-cluster: false" in result.output
    keys = [line.split(":")[0].strip() for line in result.output.splitlines()
            if ":" in line and not line.lstrip().startswith(("-", "#"))]
    assert not [k for k in keys if "_" in k and k.upper() != k], keys


@pytest.mark.parametrize(("yaml", "word"), [("revert:\n  mode: on\n", "on"),
                                            ("cluster:\n  context: yes\n", "on"),
                                            ("cluster:\n  context: off\n", "off")])
def test_a_yaml_boolean_where_a_string_belongs_is_explained(tmp_path: Path, yaml: str,
                                                            word: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml)
    line = _one_error_line(_cli(cfg, "config"))
    assert "YAML reads an unquoted" in line and "as a boolean" in line and "quote" in line
    assert f"{word}, " in line


# ------------------------------------------------------------------ completion


def test_the_bash_completion_script_is_produced() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFT_AUDITOR_")}
    proc = subprocess.run([sys.executable, "-m", "auditor.cli"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env={**env, "PYTHONPATH": str(ROOT),
                               "_DRIFT_AUDITOR_COMPLETE": "bash_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_DRIFT_AUDITOR_COMPLETE" in proc.stdout and "complete " in proc.stdout
    # And it completes: the subcommands, then their options (global ones included).
    words = subprocess.run([sys.executable, "-m", "auditor.cli"], capture_output=True,
                           text=True, timeout=60, cwd=ROOT,
                           env={**env, "PYTHONPATH": str(ROOT), "COMP_WORDS": "drift-auditor hist",
                                "COMP_CWORD": "1", "_DRIFT_AUDITOR_COMPLETE": "bash_complete"})
    assert "plain,history" in words.stdout, words.stdout
