"""Integrity past the volume: checkpoints signed by default with a key created on first use,
anchored in an evidence repository outside the cluster (a real bare Git repository here), and
`verify --anchor` failing a ledger rebuilt from scratch even though its own chain is valid.

Runs are real: the sandbox API server, kubectl, `run` in process and as the command.

The anchor records themselves (`anchor.latest`/`check`/`parse` over a ledger) are checked on
SQLite and PostgreSQL (``ledger_target``). The rest stays SQLite-only: anchoring a run, the
watch's anchorer and `verify --anchor` read the ledger at ``ledger.path`` and keep the key
beside that file (docs/fleet.md: anchoring is not on the store yet)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from gitfixtures import git
from gitopsfixtures import sync_from_git

from auditor import config as config_mod
from auditor.cli.common import Context
from auditor.cli.ledger import verify_cmd
from auditor.desired import gitrepo
from auditor.errors import ConfigError, GitError, LedgerError
from auditor.ledger import anchor, keyfile, reading, signing
from auditor.outputs import anchoring
from auditor.pipeline import cache_folder, run_once

from .backends import LedgerTarget
from .helpers import at, in_sync, key, obs

APPS = """\
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {MODE: prod}
"""

# Nothing listens on the discard port of the loopback: git fails at once, as it does for an
# evidence host that is down.
UNREACHABLE = "http://127.0.0.1:9/evidence.git"


@dataclass
class Site:
    tmp: Path
    apps: Path
    kubeconfig: Path
    evidence: Path  # a bare repository: the remote anchors are pushed to

    @property
    def ledger(self) -> Path:
        return self.tmp / "ledger.db"

    def config(self, **ledger: Any) -> Path:
        """The config file, ``ledger`` settings added (underscores as dashes)."""
        extra = "".join(f", {k.replace('_', '-')}: {v}" for k, v in ledger.items())
        path = self.tmp / "drift-auditor.yaml"
        path.write_text(f"cluster: {{name: test, kubeconfig: {self.kubeconfig}, retries: 1}}\n"
                        f"ledger: {{path: {self.ledger}{extra}}}\n"
                        f"policies: {{directory: {self.tmp / 'no-policies'}}}\n")
        return path

    def cfg(self, **ledger: Any) -> config_mod.Config:
        return config_mod.load(self.config(**ledger), env={})

    def run(self, **ledger: Any) -> Any:
        return run_once(self.cfg(**ledger), desired_path=str(self.apps))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "auditor.cli", "--config",
                               str(self.tmp / "drift-auditor.yaml"), *args],
                              capture_output=True, text=True, timeout=120,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                   "HOME": str(self.tmp), "GIT_CONFIG_NOSYSTEM": "1"})


@pytest.fixture
def site(tmp_path: Path, kubeconfig: Path, kubectl: Any) -> Site:
    apps = tmp_path / "git" / "apps"
    sync_from_git(kubectl, apps, APPS)
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    return Site(tmp_path, apps, kubeconfig, evidence)


def anchored(evidence: Path, cluster: str = "test") -> list[anchor.AnchorRecord]:
    text = git(evidence, "show", f"main:{anchor.file_for(cluster)}")
    return anchor.parse(text)


def verify(site: Site, *args: str) -> Any:
    return CliRunner().invoke(verify_cmd, list(args), obj=Context(str(site.config())))


# ------------------------------------------------------------------ signed by default


@pytest.mark.kubectl
def test_the_first_run_creates_the_key_and_names_its_public_key(site: Site) -> None:
    site.config()
    first = site.cli("run", "--desired", str(site.apps), "--exit-zero-on-drift")
    assert first.returncode == 0, first.stderr
    key_file = keyfile.beside(site.ledger)
    assert key_file.name == "ledger.signing-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "Give this public key to the auditor" in first.stderr
    assert "-----BEGIN PUBLIC KEY-----" in first.stderr
    with reading(site.ledger) as conn:
        assert all(sig for (sig,) in conn.execute("SELECT signature FROM checkpoints"))

    printed = site.cli("public-key")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert printed.stdout in first.stderr  # the key announced is the key printed
    public = site.tmp / "auditor.pub"
    public.write_text(printed.stdout)

    second = site.cli("run", "--desired", str(site.apps), "--exit-zero-on-drift")
    assert second.returncode == 0, second.stderr
    assert "Give this public key" not in second.stderr  # once, on creation
    checked = site.cli("verify", "--public-key", str(public))
    assert checked.returncode == 0, checked.stderr
    assert "2 checkpoints, 2 signatures valid" in checked.stdout
    # The auditor's key is the only one that counts: another fails every checkpoint.
    other = site.tmp / "other.pem"
    signing.generate(other)
    refused = site.cli("verify", "--public-key", str(other))
    assert refused.returncode == 2 and "signed by another key" in refused.stderr


@pytest.mark.kubectl
def test_sign_false_opts_out(site: Site) -> None:
    site.run(sign="false")
    assert not keyfile.beside(site.ledger).exists()
    with reading(site.ledger) as conn:
        assert [sig for (sig,) in conn.execute("SELECT signature FROM checkpoints")] == [None]
    result = CliRunner().invoke(verify_cmd, [], obj=Context(str(site.config(sign="false"))))
    assert result.exit_code == 0 and "signatures valid" not in result.output
    with pytest.raises(ConfigError, match=r"ledger\.sign: false, yet"):
        site.cfg(sign="false", signing_key_file=site.tmp / "k.pem")


# ------------------------------------------------------------------ anchors


@pytest.mark.kubectl
def test_runs_anchor_their_checkpoints_and_verify_checks_them(site: Site) -> None:
    outcomes = [site.run(anchor_repo=site.evidence), site.run(anchor_repo=site.evidence)]
    records = anchored(site.evidence)
    assert [(r.run_id, r.seq, r.head_hash) for r in records] == [
        (o.run_id, o.head_seq, o.head_hash) for o in outcomes]
    public = signing.public_hex(signing.load_public_key(keyfile.beside(site.ledger)))
    assert {r.public_key for r in records} == {public}
    assert records[0].fingerprint == keyfile.fingerprint(public)
    assert all(r.signature and r.cluster == "test" for r in records)
    log = git(site.evidence, "log", "--format=%s", "main").splitlines()
    assert log == [f"anchor test: checkpoint at event {o.head_seq} (run {o.run_id}) "
                   f"{o.head_hash[:12]}" for o in reversed(outcomes)]
    assert not any(p.where == "anchor" for o in outcomes for p in o.audit.problems)

    result = verify(site, "--anchor", str(site.evidence))
    assert result.exit_code == 0, result.output
    assert ("anchors OK: the ledger holds all 2 anchored checkpoints, 2 anchored signatures "
            "valid") in result.output
    # Nothing new since: the same checkpoint is not anchored twice.
    assert anchoring.anchor(site.cfg(anchor_repo=site.evidence),
                            cache_folder(site.cfg())).status == "already"
    assert len(anchored(site.evidence)) == 2


@pytest.mark.kubectl
@pytest.mark.parametrize("fresh_key", [False, True], ids=["same-key", "fresh-key"])
def test_a_ledger_rebuilt_from_scratch_fails_verify_anchor(site: Site, fresh_key: bool) -> None:
    site.run(anchor_repo=site.evidence)
    site.run(anchor_repo=site.evidence)
    first = anchored(site.evidence)[0]
    old_key = site.tmp / "auditor.pem"
    old_key.write_bytes(keyfile.beside(site.ledger).read_bytes())

    # Whoever holds the volume starts over: a new file with a valid chain of its own.
    for path in site.tmp.glob("ledger.db*"):
        path.unlink()
    if fresh_key:
        keyfile.beside(site.ledger).unlink()
    site.run()
    site.run()
    own = verify(site)
    assert own.exit_code == 0 and own.output.startswith("ledger OK"), own.output

    # The key beside the ledger is the one trusted by default (the new one, when fresh).
    bad = verify(site, "--anchor", str(site.evidence))
    assert bad.exit_code == 2
    lines = bad.output.strip().splitlines()
    assert len(lines) == 1, bad.output
    assert lines[0].startswith(f"drift-auditor: error: {site.ledger}: anchor mismatch: "
                               f"anchored checkpoint at event {first.seq} (cluster test, "
                               f"run {first.run_id}, ")
    if fresh_key:
        assert "it was signed by another key" in lines[0]
        # With the auditor's copy of the old key, the ledger's own checkpoints fail first.
        own_key = verify(site, "--anchor", str(site.evidence), "--public-key", str(old_key))
        assert own_key.exit_code == 2 and "ledger tampered" in own_key.output
        assert "was signed by another key" in own_key.output
    else:
        assert "the ledger was rebuilt or rewritten after the anchor" in lines[0]
        # Without any key at hand, each anchor's own key checks it: the chain still differs.
        keyfile.beside(site.ledger).unlink()
        keyless = verify(site, "--anchor", str(site.evidence))
        assert keyless.exit_code == 2 and "rebuilt or rewritten" in keyless.output


@pytest.mark.kubectl
def test_an_unreachable_evidence_repository_never_fails_the_run(site: Site) -> None:
    site.config(anchor_repo=UNREACHABLE)
    proc = site.cli("run", "--desired", str(site.apps), "--output", "json")
    assert proc.returncode == 0, proc.stderr  # in sync, complete: the anchor is a warning
    import orjson

    doc = orjson.loads(proc.stdout)
    assert doc["run"]["status"] == "complete"
    [problem] = [p for p in doc["problems"] if p["where"] == "anchor"]
    assert problem["kind"] == "warning"
    assert problem["message"].startswith(f"the checkpoint at event {doc['run']['head_seq']} "
                                         f"was not anchored in {UNREACHABLE}: ")
    assert "tried again after the next run" in problem["message"]

    # The next run records the failure in the chain and anchors its own checkpoint.
    second = site.run(anchor_repo=site.evidence)
    assert second.status == "complete"
    with reading(site.ledger) as conn:
        problems = conn.execute("SELECT problems FROM runs WHERE id = ?",
                                (second.run_id,)).fetchone()[0]
    assert f"the last anchoring to {UNREACHABLE} failed at" in problems
    assert [r.run_id for r in anchored(site.evidence)] == [second.run_id]
    third = site.run(anchor_repo=site.evidence)
    assert not any(p.where == "anchor" for p in third.audit.problems)


# ------------------------------------------------------------------ without a cluster


def _signed(tmp_path: Path, target: LedgerTarget, runs: int = 2) -> Path:
    """``runs`` runs into ``target`` signed with a new key; returns the key file."""
    key_file = tmp_path / "ledger.signing-key"
    signing.generate(key_file)
    _more_runs(target, key_file, runs)
    return key_file


def _signed_ledger(tmp_path: Path, runs: int = 2) -> tuple[Path, Path]:
    db = tmp_path / "ledger.db"
    return db, _signed(tmp_path, LedgerTarget("sqlite", db), runs)


def _more_runs(db: Path | LedgerTarget, key_file: Path, runs: int, start: int = 0) -> None:
    target = db if isinstance(db, LedgerTarget) else LedgerTarget("sqlite", db)
    with target.open(signing_key_file=key_file) as ledger:
        for hour in range(start, start + runs):
            run = ledger.begin_run(cluster="test", started_at=at(hour))
            k = key("web")
            run.observe(obs(k, {"replicas": hour}, rv=str(hour + 1)))
            run.record(in_sync(k))
            run.finish()


def test_check_names_a_forged_signature_a_foreign_key_and_a_truncated_ledger(
        tmp_path: Path, ledger_target: LedgerTarget) -> None:
    key_file = _signed(tmp_path, ledger_target)
    public = signing.load_public_key(key_file)
    with ledger_target.reading() as conn:
        record = anchor.latest(conn, "test", "2026-11-21T00:00:00Z")
        assert record is not None
        assert anchor.check(conn, [record], public).ok
        assert anchor.check(conn, [record]).ok  # with the key the record carries
        assert anchor.parse(record.line()) == [record]

        forged = replace(record, signature="00" * 64)
        result = anchor.check(conn, [record, forged])
        assert not result.ok and result.first_mismatch == forged
        assert "its anchored signature does not verify (1 of 2" in result.message

        other = tmp_path / "other.pem"
        signing.generate(other)
        foreign = anchor.check(conn, [record], signing.load_public_key(other))
        assert "was signed by another key" in foreign.message

        # An unsigned ledger's anchor (ledger.sign: false) past the ledger's end: the ledger
        # lost its tail, or is another one.
        beyond = replace(record, seq=record.seq + 50, signature="", public_key="",
                         fingerprint="")
        truncated = anchor.check(conn, [beyond])
        assert f"the ledger has no event {record.seq + 50} (its chain ends at event " \
            f"{record.seq}) — it was truncated or rebuilt" in truncated.message
        # ... and with the auditor's key, an unsigned anchor is not accepted at all.
        assert "it is unsigned, and a public key was given" in anchor.check(
            conn, [beyond], public).message


def test_parse_names_a_damaged_line_unless_appending(tmp_path: Path,
                                                      ledger_target: LedgerTarget) -> None:
    _signed(tmp_path, ledger_target, 1)
    with ledger_target.reading() as conn:
        record = anchor.latest(conn, "test", "2026-11-21T00:00:00Z")
    assert record is not None
    text = record.line() + "{not json\n"
    with pytest.raises(LedgerError, match="anchors: line 2 is not an anchor record"):
        anchor.parse(text)
    assert anchor.parse(text, strict=False) == [record]


def _cfg(tmp_path: Path, db: Path, repo: Path | str) -> config_mod.Config:
    path = tmp_path / "drift-auditor.yaml"
    path.write_text(f"cluster: {{name: test}}\nledger: {{path: {db}, anchor-repo: {repo}, "
                    "anchor-interval-minutes: 60}\n")
    return config_mod.load(path, env={})


def test_watch_anchors_at_most_every_interval_and_retries_sooner_after_a_failure(
        tmp_path: Path) -> None:
    db, key_file = _signed_ledger(tmp_path, 1)
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    state = tmp_path / "cache"
    hour = 3600.0
    t0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
    cfg = _cfg(tmp_path, db, evidence)
    assert anchoring.anchor(cfg, state, min_interval_seconds=hour, now=t0).status == "anchored"
    _more_runs(db, key_file, 1, start=1)
    later = t0 + timedelta(minutes=10)
    assert anchoring.anchor(cfg, state, min_interval_seconds=hour, now=later).status == "not-due"
    due = t0 + timedelta(minutes=61)
    assert anchoring.anchor(cfg, state, min_interval_seconds=hour, now=due).status == "anchored"
    assert len(anchored(evidence)) == 2

    broken = _cfg(tmp_path, db, UNREACHABLE)
    _more_runs(db, key_file, 1, start=2)
    fail_at = due + timedelta(minutes=61)
    failed = anchoring.anchor(broken, state, min_interval_seconds=hour, now=fail_at)
    assert failed.status == "failed" and failed.problem is not None
    assert anchoring.pending(broken, state)[0].message.startswith(
        f"the last anchoring to {UNREACHABLE} failed at ")
    soon = fail_at + timedelta(minutes=1)
    assert anchoring.anchor(cfg, state, min_interval_seconds=hour, now=soon).status == "not-due"
    retry = fail_at + timedelta(seconds=anchoring.RETRY_SECONDS)
    assert anchoring.anchor(cfg, state, min_interval_seconds=hour, now=retry).status == "anchored"
    assert anchoring.pending(cfg, state) == []
    assert len(anchored(evidence)) == 3


def test_the_anchorer_thread_anchors_when_poked(tmp_path: Path) -> None:
    db, _key = _signed_ledger(tmp_path, 1)
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    anchorer = anchoring.Anchorer(_cfg(tmp_path, db, evidence), tmp_path / "cache")
    anchorer.start()
    anchorer.poke()
    anchorer.poke()  # within the interval: one anchor
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if anchored(evidence):
                break
        except AssertionError:
            pass
        time.sleep(0.1)
    anchorer.stop()
    assert len(anchored(evidence)) == 1


# ------------------------------------------------------------------ the evidence repository


def _append(line: str) -> Any:
    def edit(tree: Path) -> list[str]:
        target = tree / "checkpoints" / "x.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as fh:
            fh.write(line + "\n")
        return ["checkpoints/x.jsonl"]
    return edit


def test_a_push_refused_because_the_branch_moved_is_tried_again(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    cache = tmp_path / "cache"
    assert gitrepo.commit_evidence(str(evidence), "main", _append("one"), "one", cache_dir=cache)
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", str(evidence), str(other))
    calls = []

    def racing(tree: Path) -> list[str]:
        calls.append(tree)
        if len(calls) == 1:  # another cluster's anchor lands between our fetch and push
            (other / "checkpoints" / "y.jsonl").write_text("theirs\n")
            git(other, "add", "-A")
            git(other, "-c", "user.name=o", "-c", "user.email=o@x", "commit", "-q", "-m", "y")
            git(other, "push", "-q", "origin", "main")
        return _append("two")(tree)

    assert gitrepo.commit_evidence(str(evidence), "main", racing, "two", cache_dir=cache)
    assert len(calls) == 2
    assert git(evidence, "show", "main:checkpoints/x.jsonl").splitlines() == ["one", "two"]
    assert git(evidence, "show", "main:checkpoints/y.jsonl") == "theirs"
    assert git(evidence, "log", "--format=%s", "main").splitlines() == ["two", "y", "one"]


def test_a_local_work_tree_is_committed_in_place_and_read_as_committed(tmp_path: Path) -> None:
    tree = tmp_path / "evidence"
    git(tmp_path, "init", "-q", "-b", "main", str(tree))
    cache = tmp_path / "cache"
    assert gitrepo.read_evidence(str(tree), "main", "checkpoints/x.jsonl", cache_dir=cache) is None
    sha = gitrepo.commit_evidence(str(tree), "main", _append("one"), "one", cache_dir=cache)
    assert sha and git(tree, "rev-parse", "HEAD") == sha
    (tree / "checkpoints" / "x.jsonl").write_text("uncommitted\n")  # only commits count
    assert gitrepo.read_evidence(str(tree), "main", "checkpoints/x.jsonl",
                                 cache_dir=cache) == "one"
    assert not cache.exists()


def test_a_missing_evidence_repository_is_a_git_error(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="no such repository"):
        gitrepo.commit_evidence(str(tmp_path / "nowhere"), "main", _append("x"), "x",
                                cache_dir=tmp_path / "cache")


def test_verify_anchor_without_anchors_is_an_error(tmp_path: Path) -> None:
    db, _key = _signed_ledger(tmp_path, 1)
    evidence = tmp_path / "evidence.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(evidence))
    _cfg(tmp_path, db, evidence)
    result = CliRunner().invoke(verify_cmd, ["--anchor", str(evidence)],
                                obj=Context(str(tmp_path / "drift-auditor.yaml")))
    assert result.exit_code == 2
    assert "no anchored checkpoint of cluster test: nothing to check the ledger against" \
        in result.output
    assert sqlite3.connect(db).execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1
