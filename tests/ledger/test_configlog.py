"""The tool's own configuration on the record (:mod:`auditor.ledger.configlog`): a version per
change of the effective configuration (settings, DriftIgnore files, policy pack), per run
mode, chained and verified, with where it came from (Git author and trailers) and nothing
secret in it. Every test runs on SQLite and PostgreSQL (``ledger_target``); tampering goes
through :meth:`LedgerTarget.untriggered`, and "nothing secret stored" reads the file's bytes
on SQLite and the stored rows on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from auditor import config as config_mod
from auditor.cli.common import Context
from auditor.cli.ledger import history_cmd
from auditor.config import Config
from auditor.desired.gitrepo import file_provenance
from auditor.ledger import configlog
from auditor.pipeline import configuration, record_configuration
from tests.gitfixtures import RepoBuilder

from .backends import LedgerTarget
from .helpers import at

CONFIG = """\
scope: {exclude-namespaces: [kube-system]}
policies: {directory: POLICIES}
"""
IGNORE = """\
apiVersion: drift-auditor.io/v1
kind: DriftIgnore
metadata: {name: hpa-replicas}
spec:
  match: {group: apps, kind: Deployment, namespace: "shop-*"}
  paths: [spec.replicas]
  reason: the HPA owns replicas
"""


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ignore.yaml").write_text(IGNORE)
    cfg = tmp_path / "drift-auditor.yaml"
    cfg.write_text(CONFIG.replace("POLICIES", str(policies)))
    return cfg, policies


def _record(db: LedgerTarget, cfg: Config, origin: configlog.Origin, hours: float,
            mode: str = "run") -> int | None:
    snap = configuration(cfg, origin)
    with db.open(config_hash=snap.digest) as ledger:
        run = ledger.begin_run(started_at=at(hours), mode=mode)
        recorded = record_configuration(run, snap)
        run.finish("complete")
    return recorded


def _rows(db: LedgerTarget) -> list[configlog.Version]:
    with db.reading() as conn:
        return configlog.versions(conn)


def test_no_change_no_new_version_and_runs_name_their_version(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, _ = _setup(tmp_path)
    db = ledger_target
    cfg = config_mod.load(file)
    origin = configlog.Origin.of(file, ["DRIFT_AUDITOR_LEDGER_PATH", "HOME", "DRIFT_AUDITOR_TOOLS"])
    assert _record(db, cfg, origin, 0) == 1
    assert _record(db, cfg, origin, 1) is None
    assert _record(db, cfg, origin, 2) is None
    [version] = _rows(db)
    assert version.mode == "run" and version.previous_id is None and version.run_id == 1
    assert version.config_file == str(file.resolve())
    # Names only, never values; the tools folder is no setting.
    assert version.environment == ["DRIFT_AUDITOR_LEDGER_PATH"]
    assert version.scope["exclude_namespaces"] == ["kube-system"]
    hashes = {h for (h,) in db.rows("SELECT config_hash FROM runs")}
    assert hashes == {version.digest}  # every run names the version it ran under
    assert version.digest != cfg.digest()  # the DriftIgnore file is in it


def test_a_settings_change_is_a_new_version_with_its_diff(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, _ = _setup(tmp_path)
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    _record(db, config_mod.load(file), origin, 0)
    file.write_text(file.read_text().replace("[kube-system]", "[kube-system, monitoring]"))
    assert _record(db, config_mod.load(file), origin, 1) == 2
    old, new = _rows(db)
    assert new.previous_id == old.id and new.digest != old.digest
    text = configlog.diff(old, new)
    assert "+    - monitoring" in text and text.count("\n+ ") + text.count("\n- ") <= 2


def test_a_drift_ignore_file_change_is_recorded(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, policies = _setup(tmp_path)
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    cfg = config_mod.load(file)
    _record(db, cfg, origin, 0)
    (policies / "ignore.yaml").write_text(IGNORE.replace("[spec.replicas]",
                                                         "[spec.replicas, spec.paused]"))
    assert _record(db, cfg, origin, 1) == 2  # the same settings: only the file changed
    old, new = _rows(db)
    shown = str(policies / "ignore.yaml")
    [rule] = [r for r in new.ignore_rules if r["source"] != "config"]
    assert rule["source"] == shown and rule["document"] == 1
    assert rule["paths"] == ["spec.replicas", "spec.paused"]
    assert old.policy_pack["digest"] != new.policy_pack["digest"]
    assert new.policy_pack["files"]["ignore.yaml"] != old.policy_pack["files"]["ignore.yaml"]
    assert "+  - spec.paused" in configlog.diff(old, new)
    # A DriftIgnore file removed is a change too, and stays named in the record.
    (policies / "ignore.yaml").unlink()
    assert _record(db, cfg, origin, 2) == 3
    gone = [f for f in _rows(db)[-1].files if f["path"] == shown]
    assert gone and gone[0]["sha256"] == ""


def test_versions_are_compared_per_run_mode(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, _ = _setup(tmp_path)
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    run_cfg = config_mod.load(file)
    watch_cfg = config_mod.load(file, overrides={"watch": {"audit_log": "/var/log/audit.log"}})
    assert _record(db, run_cfg, origin, 0) == 1
    assert _record(db, watch_cfg, origin, 0.5, mode="watch") == 2
    # Alternating run and watch batches record nothing more.
    assert _record(db, run_cfg, origin, 1) is None
    assert _record(db, watch_cfg, origin, 1.5, mode="watch") is None
    assert [v.mode for v in _rows(db)] == ["run", "watch"]


def test_verify_detects_an_altered_config_version(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, _ = _setup(tmp_path)
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    _record(db, config_mod.load(file), origin, 0)
    [version] = _rows(db)
    with db.connect() as conn, pytest.raises(db.refused, match="append-only"):
        conn.execute("UPDATE config_versions SET settings = '{}'")
    # Widening the scope behind the ledger's back: an excluded namespace quietly dropped.
    db.tamper("UPDATE config_versions SET settings = replace(settings, 'kube-system', "
              "'nothing')")
    with db.open() as ledger:
        result = ledger.verify()
    assert not result.ok and result.first_broken_seq == version.seq
    assert "config_versions row 1 differs from its chained event" in result.message


def test_config_in_git_names_the_commit_author_and_trailers(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    repo = RepoBuilder(tmp_path / "ops")
    repo.write("policies/ignore.yaml", IGNORE)
    file = repo.write("drift-auditor.yaml", CONFIG.replace("POLICIES",
                                                           str(repo.path / "policies")))
    sha = repo.commit("Narrow the audit scope\n\nReviewed-by: Bob Reviewer <bob@example.com>",
                      author=("Alice Admin", "alice@example.com"))
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    _record(db, config_mod.load(file), origin, 0)
    [version] = _rows(db)
    by_path = {f["path"]: f for f in version.files}
    git = by_path[str(file.resolve())]["git"]
    assert git["tracked"] and not git["modified"] and git["path"] == "drift-auditor.yaml"
    assert git["commit"]["sha"] == sha and git["commit"]["author"] == "Alice Admin"
    assert git["commit"]["author_email"] == "alice@example.com"
    assert ["Reviewed-by", "Bob Reviewer <bob@example.com>"] in git["commit"]["trailers"]
    assert by_path[str(repo.path / "policies" / "ignore.yaml")]["git"]["commit"]["sha"] == sha
    # Edited and not committed: Git says the file on disk is not what it holds.
    file.write_text(file.read_text() + "# edited by hand\n")
    found = file_provenance(file)
    assert found is not None and found["modified"] and found["commit"]["sha"] == sha
    assert file_provenance(tmp_path / "elsewhere.yaml") is None  # in no work tree


def test_nothing_secret_is_recorded(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file = tmp_path / "drift-auditor.yaml"
    file.write_text("""\
sources:
  - url: https://deploy:hunter2-pw@git.example.com/ops.git
    helm: {set: [db.password=pw-in-helm, replicas=3]}
    credentials: {password-env: GIT_TOKEN}
  - url: https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/o/r.git
    credentials: {username: github_pat_11ABCDEFG0123456789abcdef}
metrics: {pushgateway: "http://pgw:9091/?api_key=key-in-query&job=x"}
""")
    db = ledger_target
    cfg = config_mod.load(file)
    _record(db, cfg, configlog.Origin.of(file, ["DRIFT_AUDITOR_SLACK_TOKEN_ENV"]), 0)
    if db.postgresql:  # every stored value of the rows and events the run wrote
        stored = "".join(str(r) for table in ("config_versions", "events", "runs")
                         for r in db.rows(f"SELECT * FROM {table}")).encode()
        assert b"hunter2" not in stored and b"sources" in stored
    else:
        assert isinstance(db.location, Path)
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("l.db*"))
        assert stored
    for secret in (b"hunter2-pw", b"pw-in-helm", b"ghp_abcdefghijklmnop", b"key-in-query",
                   b"github_pat_11ABC"):
        assert secret not in stored
    [version] = _rows(db)
    first, second = version.settings["sources"]
    assert first["url"] == "https://deploy:<redacted>@git.example.com/ops.git"
    assert first["helm"]["set"] == ["db.password=<redacted>", "replicas=3"]
    assert first["credentials"]["password_env"] == "GIT_TOKEN"  # the name is the setting
    assert second["url"] == "https://<redacted>@github.com/o/r.git"
    assert second["credentials"]["username"] == "<redacted>"
    assert version.settings["metrics"]["pushgateway"] == "http://pgw:9091/?api_key=<redacted>&job=x"


def test_history_type_config_lists_versions_with_their_diff(tmp_path: Path, ledger_target: LedgerTarget) -> None:
    file, _ = _setup(tmp_path)
    db = ledger_target
    origin = configlog.Origin.of(file, [])
    _record(db, config_mod.load(file), origin, 0)
    file.write_text(file.read_text().replace("[kube-system]", "[kube-system, monitoring]"))
    _record(db, config_mod.load(file), origin, 1)
    runner = CliRunner()
    result = runner.invoke(history_cmd, ["--ledger", db.ref, "--type", "config"],
                           obj=Context(str(file)))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "config version 1" in out and "config version 2" in out and "first recorded" in out
    assert "+    - monitoring" in out
    assert "NOT APPROVED" in out and "not under version control" in out
    result = runner.invoke(history_cmd, ["--ledger", db.ref, "--type", "config", "--since",
                                         "2026-11-20T09:30:00Z", "-o", "json"],
                           obj=Context(str(file)))
    assert result.exit_code == 0, result.output
    assert '"id": 2' in result.output and '"id": 1,' not in result.output
