"""Configuration: file, environment and flag layering; precise rejection of bad input, in
one short line whatever the file holds (alias bombs, huge values, huge files)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults.hostile import alias_bomb

from auditor import config
from auditor.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "drift-auditor.yaml"
    path.write_text(text)
    return path


def test_defaults_exclude_churn_kinds(tmp_path: Path) -> None:
    cfg = config.load(None, env={"DRIFT_AUDITOR_CONFIG": str(write(tmp_path, ""))})
    assert "Event" in cfg.scope.exclude_kinds
    assert "EndpointSlice.discovery.k8s.io" in cfg.scope.exclude_kinds
    assert "Lease.coordination.k8s.io" in cfg.scope.exclude_kinds
    assert cfg.ledger.path == "drift-auditor.db"
    assert cfg.revert.mode == "off"


def test_file_env_and_flags_layer_in_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
sources:
  - url: https://git.example.com/platform/apps.git
    revision: main
    paths: [clusters/prod]
    namespace: shop
cluster: {context: prod, page-size: 250}
ledger: {path: /data/ledger.db}
""")
    cfg = config.load(path, env={"DRIFT_AUDITOR_LEDGER_PATH": "/env/ledger.db",
                                 "DRIFT_AUDITOR_CLUSTER_PAGE_SIZE": "100"},
                      overrides={"cluster": {"context": "staging"}})
    assert cfg.sources[0].url == "https://git.example.com/platform/apps.git"
    assert cfg.sources[0].paths == ("clusters/prod",)
    assert cfg.sources[0].namespace == "shop"
    assert cfg.ledger.path == "/env/ledger.db"       # env beats file
    assert cfg.cluster.page_size == 100              # env strings are converted
    assert cfg.cluster.context == "staging"          # flags beat everything


def test_env_sets_the_single_source(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, ""), env={"DRIFT_AUDITOR_SOURCE_URL": "/srv/git/apps",
                                                "DRIFT_AUDITOR_SOURCE_PATHS": "a,b"})
    assert cfg.sources[0].url == "/srv/git/apps"
    assert cfg.sources[0].paths == ("a", "b")


@pytest.mark.parametrize(("text", "message"), [
    ("cluster: {page_size: many}", "cluster.page_size: expected an integer, got 'many'"),
    ("cluster: {colour: blue}", "cluster.colour: unknown key"),
    ("revert: {mode: sometimes}", "revert.mode: expected one of 'off', 'dry-run', 'enforce'"),
    ("sources: [{url: x, paths: 3}]", "sources[0].paths: expected a list of a string, got 3"),
    ("scope: [1]", "scope: expected a mapping"),
    ("compare: {ignore: [{kind: Deployment, pathz: [spec]}]}", "compare.ignore[0].pathz: unknown key"),
    ("ledger: {path: [a]}", "ledger.path: expected a string"),
    ("- 1", "expected a mapping at the top level"),
])
def test_bad_input_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster:\n  context: [unclosed\n")
    with pytest.raises(ConfigError, match=r"drift-auditor.yaml: line \d+ invalid YAML"):
        config.load(path, env={})


def test_unknown_environment_setting_is_rejected() -> None:
    with pytest.raises(ConfigError, match="DRIFT_AUDITOR_NOPE_X: unknown environment setting"):
        config.load(None, env={"DRIFT_AUDITOR_NOPE_X": "1"})


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml", env={})


def test_digest_is_stable_and_sensitive(tmp_path: Path) -> None:
    a = config.load(write(tmp_path, "ledger: {path: a.db}"), env={})
    b = config.load(write(tmp_path, "ledger: {path: a.db}"), env={})
    c = config.load(write(tmp_path, "ledger: {path: b.db}"), env={})
    assert a.digest() == b.digest() != c.digest()
    assert "exclude_kinds" in config.dump(a)


def test_unquoted_dates_are_kept_as_written(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, """
policies:
  exemptions:
    - {policy: p, namespace: edge, justification: j, approver: a, expires: 2027-03-31}
    - {policy: q, justification: j, approver: a, expires: 2027-03-31T10:00:00Z}
"""), env={})
    assert [e.expires for e in cfg.policies.exemptions] == [
        "2027-03-31", "2027-03-31T10:00:00+00:00"]


def test_the_readme_configuration_example_loads(tmp_path: Path) -> None:
    """What a user copies from the README must load as shown."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                if "ledger:" in block and "slack:" in block]
    assert examples, "the README's configuration example moved"
    cfg = config.load(write(tmp_path, examples[0]), env={})
    assert cfg.slack.outbox_retention_days == 30
    # Unquoted, as a user writes them: YAML reads `off` as false and the date as a date.
    assert cfg.revert.mode == "off"
    assert cfg.policies.exemptions[0].expires == "2027-03-31"


def test_an_alias_bomb_is_one_short_line_naming_the_limit(tmp_path: Path) -> None:
    # Six levels of nine (531,441 strings): past the limit, small should the limit go. The
    # full bomb runs through the CLI in a child process with a memory ceiling (tests/faults).
    path = write(tmp_path, "anchors:\n" + alias_bomb(6, indent="  ")
                 + "cluster: {name: *l5}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert str(err.value) == (f"{path}: line 7: aliases expand to more than 100,000 added "
                              "nodes, the limit for one file")


def test_a_long_value_of_the_wrong_type_is_quoted_as_an_excerpt(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {retries: " + "9x" * 200_000 + "}\n"
                 "ledger: {path: {" + ", ".join(f"k{i}: v" for i in range(1000)) + "}}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    message = str(err.value)
    assert message.startswith(f"{path}: cluster.retries: expected an integer, got '9x9x")
    assert len(message) < len(str(path)) + 150
    path.write_text("ledger: {path: {" + ", ".join(f"k{i}: v" for i in range(1000)) + "}}\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert str(err.value).startswith(f"{path}: ledger.path: expected a string, got {{'k0': 'v'")
    assert len(str(err.value)) < len(str(path)) + 150


def test_a_config_file_past_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {name: big}\n# " + "x" * config.MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert str(err.value) == f"{path}: larger than 1 MiB, the limit for one file"


# -- ledger.url / ledger.cluster / ledger.password-file (the PostgreSQL fleet store) ---------

@pytest.mark.parametrize(("text", "message"), [
    ("ledger: {url: 'postgresql://db.example/ledger'}",
     "ledger.cluster: required with a PostgreSQL ledger.url"),
    ("ledger: {url: 'mysql://db.example/ledger', cluster: prod}",
     "ledger.url: expected a postgresql:// URL (empty: the SQLite file at ledger.path), got "
     "mysql://…"),
    ("ledger: {url: 'ledger.db', cluster: prod}", "ledger.url: expected a postgresql:// URL"),
    ("ledger: {url: 'postgresql://u:hunter2@db.example/ledger', cluster: prod}",
     "ledger.url: carries a password; put it in ledger.password-file"),
    ("ledger: {url: 'postgresql://db.example/ledger?password=hunter2', cluster: prod}",
     "ledger.url: carries a password"),
    ("ledger: {url: 'postgresql://db.example/ledger', cluster: Prod_EU}",
     "ledger.cluster: 'Prod_EU' is not a cluster name"),
    ("ledger: {cluster: -prod}", "ledger.cluster: '-prod' is not a cluster name"),
    ("ledger: {cluster: " + "a" * 64 + "}", "is not a cluster name"),
    ("ledger: {url: 'postgresql://db.example/ledger', cluster: " + "a" * 61 + "}",
     "is longer than 60 characters, too long for a PostgreSQL ledger"),
])
def test_bad_ledger_store_settings_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path, env={})
    assert message in str(err.value)
    assert "hunter2" not in str(err.value)
    assert "\n" not in str(err.value)


def test_ledger_store_settings_from_file_and_environment(tmp_path: Path) -> None:
    secret = tmp_path / "pgpass"
    secret.write_text("s3cret\n")
    cfg = config.load(write(tmp_path, "ledger: {url: 'postgresql://db.example/ledger', "
                                      f"cluster: prod-eu, password-file: '{secret}'}}"),
                      env={"DRIFT_AUDITOR_LEDGER_CLUSTER": "prod-us"})
    assert (cfg.ledger.url, cfg.ledger.cluster) == ("postgresql://db.example/ledger", "prod-us")
    assert cfg.ledger.target == "postgresql://db.example/ledger"
    assert cfg.ledger.read_password() == "s3cret"
    default = config.load(None, env={})
    assert (default.ledger.url, default.ledger.target) == ("", "drift-auditor.db")
    assert default.ledger.read_password() is None
    missing = config.load(write(tmp_path, f"ledger: {{password-file: '{tmp_path}/nope'}}"), env={})
    with pytest.raises(ConfigError, match=r"ledger\.password-file: cannot read .*nope"):
        missing.ledger.read_password()
