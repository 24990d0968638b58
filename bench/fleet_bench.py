"""Fleet suite (`make bench BENCH_ARGS=fleet`): many clusters writing one PostgreSQL fleet
store at once, and reading it back (serve's fleet overview, a quarter's fleet report).

What it measures, in order:

1. **Runs.** ``--clusters`` (20) writers, each a separate ``drift-auditor run`` process with
   its own ``ledger.cluster`` (``fleet-00`` …) in one database of one PostgreSQL server, and
   its own folder (``ledger.path``, beside which its caches live); all hash Secret values
   with one ``compare.secret-hash-key-file``, as the store requires. All of them audit the
   same sandbox (:class:`auditor.sandbox.Sandbox`, in this process) holding ``--objects``
   (10,000) mixed objects (:mod:`bench.synth`), 5% drifted as in :mod:`bench.run_bench`,
   against the same Git folder: one sandbox stands in for 20 clusters, so the sandbox's own
   CPU (serving 20 listings at once, one Python process) is part of the wall times. The
   runs' recorded phases (``*_phases_s``) show it: ``discovery`` and ``list_and_compare``
   grow with the number of writers, where a real fleet has one API server per cluster. All
   writers start together; the fleet's wall time is from the first start to the last exit.
   First runs, then ``--steady-rounds`` (3) rounds of steady runs, each after 1% of the
   objects changed (a different 1% each round), again all together.
2. **The same run alone.** After each fleet round, one cluster's same run on its own SQLite
   file (``synchronous=FULL``, as shipped), alone on the machine, and the same run alone
   into the store (cluster ``solo``, its own database): the slowest fleet writer's steady
   run ÷ the SQLite run (goal ≤ 1.5×), by wall time as it is and by CPU time (which leaves
   out the queueing of 20 writers on the machine's cores), and the store alone ÷ SQLite
   alone (the back end's own cost, without contention). The CPU time is the writer
   process's own (``wait4``): the PostgreSQL server's work for it is not in it, where
   SQLite's storage work is, so the CPU ratio understates the store's cost; the store-alone
   wall ratio includes it.
3. **Size.** ``pg_total_relation_size`` (tables, indexes, TOAST) summed over each cluster's
   schema (``da_<cluster>``), and ``pg_database_size``, after the first runs and after the
   steady rounds. Growth per steady run (1% changed) is extrapolated to a cluster-month at a
   15-minute schedule (30 days × 96 = 2,880 runs): an extrapolation, not a measured month
   (no pruning, no VACUUM in between; the SQLite file's growth beside it).
4. **Serve.** ``drift-auditor serve --ledger postgresql://…/fleet`` (the URL alone: every
   cluster of the store, the fleet view) as its own process: time of ``GET /`` (the fleet
   overview) over HTTP: the first request (chains not walked yet: serve walks them in a
   background thread and the page says "verifying"), the requests until every cluster shows
   its verification and how long that took, and the median of the next ones (goal < 0.5
   s), over the run store and over the quarter store.
5. **Quarter report.** A quarter of hourly runs (``--quarter-hours``, default the whole of
   :mod:`bench.report_bench`'s quarter: 2,204 runs, 2026-07-01 to 2026-09-30 less a 4-hour
   outage) written through the ledger API by :func:`bench.report_bench.build_ledger` (it
   writes a file: its runs record the cluster name ``prod``), copied with ``ledger
   copy``'s code (:func:`auditor.ledger.transfer.copy_to_store`: the rows and chain as the
   API wrote them, verified on both sides) into each of ``--clusters`` clusters
   (``q-00`` …) of a third database. One quarter is built and copied into every cluster:
   the report reads each cluster's schema on its own, so identical content costs the same
   as distinct content. Then ``drift-auditor report --ledger postgresql://…/quarter --from
   … --to …`` (HTML, the default), whole process (goal < 30 s for 20 clusters).

The server is :class:`tests.pgkit.PgServer` (initdb in a temporary directory, Unix socket
only; as the ``postgres`` user through ``runuser`` when run as root). Its test settings turn
durability off; the suite turns ``fsync``, ``synchronous_commit`` and ``full_page_writes``
back on and restarts it with ``shared_buffers`` 128MB (PostgreSQL's default) so that it
compares fairly with SQLite's ``synchronous=FULL`` (``--no-durable``: the kit's settings).
The server, the sandbox, the writers and the readers share the machine's cores (reported as
``cores``): 20 writers on 2 cores queue for CPU, and the figures are reported as they are.

Usage: python -m bench.fleet_bench [--clusters N] [--objects N] [--steady-rounds N]
                                   [--quarter-hours N] [--no-durable]
       python -m bench fleet  (sizes from BENCH_FLEET_CLUSTERS, BENCH_FLEET_OBJECTS,
                               BENCH_FLEET_STEADY_ROUNDS, BENCH_FLEET_QUARTER_HOURS;
                               BENCH_FLEET_DURABLE=0 for --no-durable)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from bench.run_bench import _drift
from bench.synth import objects

ROOT = Path(__file__).resolve().parents[1]
# A 15-minute schedule: runs in a 30-day month.
RUNS_PER_MONTH = 30 * 24 * 4
SERVE_REQUESTS = 10
MIB = 2**20


@dataclass(frozen=True)
class Sizes:
    clusters: int = 20
    objects: int = 10_000
    steady_rounds: int = 3
    # None: bench.report_bench's whole quarter.
    quarter_hours: int | None = None
    durable: bool = True


def _env_sizes() -> Sizes:
    """:class:`Sizes` from BENCH_FLEET_* (``python -m bench fleet`` passes no arguments)."""
    def num(name: str) -> int | None:
        value = os.environ.get(f"BENCH_FLEET_{name}", "")
        return int(value) if value else None

    base = Sizes()
    return Sizes(clusters=num("CLUSTERS") or base.clusters,
                 objects=num("OBJECTS") or base.objects,
                 steady_rounds=num("STEADY_ROUNDS") or base.steady_rounds,
                 quarter_hours=num("QUARTER_HOURS"),
                 durable=os.environ.get("BENCH_FLEET_DURABLE", "1") != "0")


# -- the server ------------------------------------------------------------------------------

def _pg_url(server: Any, database: str) -> str:
    from tests.pgkit import PORT

    return f"postgresql://postgres@/{database}?host={server.socket_dir}&port={PORT}"


def _make_durable(server: Any) -> None:
    """Durability as a production server has it (the kit turns it off for tests), and
    PostgreSQL's default shared_buffers; a restart applies the latter."""
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        for name, value in (("fsync", "on"), ("synchronous_commit", "on"),
                            ("full_page_writes", "on"), ("shared_buffers", "128MB")):
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
    server._run(["pg_ctl", "-D", str(server.datadir), "-l", str(server.logfile), "-w",
                 "-t", "60", "restart"])


def _schema_bytes(server: Any, database: str, cluster: str) -> int:
    from auditor.ledger.pgconn import schema_name

    with psycopg.connect(server.conninfo(database), autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm', 'p')",
            (schema_name(cluster),)).fetchone()
    return int(row[0]) if row else 0


def _database_bytes(server: Any, database: str) -> int:
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(%s)", (database,)).fetchone()
    return int(row[0]) if row else 0


# -- writers ---------------------------------------------------------------------------------

@dataclass
class Writer:
    name: str
    config: Path
    folder: Path
    # The store's URL (the writer's cluster is its name), or "" for its SQLite file.
    url: str = ""

    def phases(self) -> dict[str, Any]:
        """The seconds per phase its latest run recorded (``runs.counts``)."""
        from auditor.ledger import runs
        from auditor.ledger.backend import reading_checked

        target = self.url or str(self.folder / "ledger.db")
        with reading_checked(target, cluster=self.name if self.url else None) as conn:
            latest = runs(conn, limit=1)
        return dict(latest[0]["counts"].get("seconds", {})) if latest else {}


def _writer(tmp: Path, name: str, kubeconfig: Path, url: str | None,
            password: Path) -> Writer:
    """A writer's folder and configuration. Every writer hashes Secret values with one key
    (``compare.secret-hash-key-file``, which the store requires), the SQLite one too."""
    from auditor.support.secretkey import load_or_create

    key = tmp / "secret-hash.key"
    load_or_create(key)
    folder = tmp / "writers" / name
    folder.mkdir(parents=True)
    ledger = f"path: {folder / 'ledger.db'}"
    if url:
        ledger += f", url: '{url}', cluster: {name}, password-file: {password}"
    config = folder / "drift-auditor.yaml"
    config.write_text(f"cluster: {{name: {name}, kubeconfig: {kubeconfig}}}\n"
                      f"ledger: {{{ledger}}}\ncompare: {{secret-hash-key-file: {key}}}\n"
                      f"policies: {{directory: {tmp / 'none'}}}\n")
    return Writer(name, config, folder, url or "")


def _cli(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "auditor.cli", "--config", str(config), *args]


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(ROOT)}


def _run_together(writers: list[Writer], apps: Path) -> dict[str, Any]:
    """Start every writer's ``drift-auditor run`` at once; each one's wall and CPU time
    (``wait4``'s rusage of that process), and the whole batch's wall time."""
    results: dict[str, dict[str, float]] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def reap(writer: Writer, proc: subprocess.Popen[bytes], started: float) -> None:
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.perf_counter()
        proc.returncode = os.waitstatus_to_exitcode(status)
        with lock:
            results[writer.name] = {"wall_s": ended - started, "end": ended,
                                    "cpu_s": usage.ru_utime + usage.ru_stime}
            if proc.returncode != 0:
                log = (writer.folder / "run.log").read_text(errors="replace")[-1500:]
                failures.append(f"{writer.name}: exit {proc.returncode}: {log}")

    threads = []
    first = time.perf_counter()
    for writer in writers:
        with (writer.folder / "run.log").open("wb") as log:
            started = time.perf_counter()
            proc = subprocess.Popen(_cli(writer.config, "run", "--desired", str(apps),
                                         "--exit-zero-on-drift"),
                                    stdout=log, stderr=subprocess.STDOUT, cwd=writer.folder,
                                    env=_child_env())
        thread = threading.Thread(target=reap, args=(writer, proc, started))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError("\n".join(failures))
    last = max(r["end"] for r in results.values())
    walls = [r["wall_s"] for r in results.values()]
    slowest = max(results, key=lambda n: results[n]["wall_s"])
    return {"fleet_wall_s": last - first, "slowest": slowest,
            "slowest_wall_s": results[slowest]["wall_s"],
            "slowest_cpu_s": results[slowest]["cpu_s"],
            "median_wall_s": statistics.median(walls),
            "cpu_s_total": sum(r["cpu_s"] for r in results.values())}


def _apply_changes(sb: Any, desired: list[dict[str, Any]], round_no: int) -> int:
    """1% of the objects changed by a human, a different 1% each round."""
    start = (7 + 13 * round_no) % 100
    changed = desired[start::100]
    for i, obj in enumerate(changed):
        sb.apply(_drift(obj, f"s{round_no}-{i}"), field_manager="kubectl-edit", force=True)
    return len(changed)


def _sqlite_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("ledger.db*") if p.is_file())


# -- readers ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[float, int, str]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=300) as resp:
        body = resp.read().decode()
        status = resp.status
    return time.perf_counter() - t, status, body


def _serve_times(config: Path, url: str, clusters: list[str], tmp: Path) -> dict[str, Any]:
    """``serve --ledger URL`` in its own process: the fleet overview's first and warm
    request times."""
    port = _free_port()
    reports = tmp / "reports"
    reports.mkdir(exist_ok=True)
    log = (tmp / f"serve-{port}.log").open("wb")
    proc = subprocess.Popen(_cli(config, "serve", "--ledger", url, "--host", "127.0.0.1",
                                 "--port", str(port), "--reports-dir", str(reports)),
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp, env=_child_env())
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("serve did not start: " + (tmp / f"serve-{port}.log")
                                       .read_text(errors="replace")[-1500:]) from None
                time.sleep(0.2)
        started = time.monotonic()
        first_s, status, body = _get(base + "/")
        missing = [c for c in clusters if c not in body]
        if status != 200 or missing:
            raise RuntimeError(f"fleet overview: status {status}, clusters missing: {missing}")
        # The chains are walked by serve's background thread (auditor.web.chainstate): the
        # page says "verifying" until then. Warm times are taken once every cluster shows
        # its verification, so they do not share the interpreter with the walks.
        verifying = []
        while body.count(">verified<") + body.count(">FAILED<") < len(clusters):
            if time.monotonic() - started > 600:
                raise RuntimeError("fleet overview: chains not verified within 600 s")
            time.sleep(0.5)
            took, _, body = _get(base + "/")
            verifying.append(took)
        all_verified_s = time.monotonic() - started
        warm = [_get(base + "/")[0] for _ in range(SERVE_REQUESTS)]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return {"first_request_s": round(first_s, 3),
            "all_verified_after_s": round(all_verified_s, 1),
            "while_verifying_median_s": round(statistics.median(verifying), 3)
            if verifying else None,
            "warm_median_s": round(statistics.median(warm), 3),
            "warm_max_s": round(max(warm), 3), "page_kib": round(len(body) / 1024)}


# -- the suite -------------------------------------------------------------------------------

def bench_fleet(sizes: Sizes | None = None) -> dict[str, Any]:
    from auditor.ledger.transfer import copy_to_store
    from auditor.sandbox import Sandbox
    from bench.report_bench import END as QUARTER_END
    from bench.report_bench import START, build_ledger
    from tests.pgkit import PgServer

    sizes = sizes or _env_sizes()
    names = [f"fleet-{i:02d}" for i in range(sizes.clusters)]
    out: dict[str, Any] = {"cores": os.cpu_count(), "clusters": sizes.clusters,
                           "objects_per_cluster": sizes.objects,
                           "steady_rounds": sizes.steady_rounds,
                           "pg_durable": sizes.durable}
    with tempfile.TemporaryDirectory() as tmp_name, PgServer() as server, Sandbox() as sb:
        tmp = Path(tmp_name)
        if sizes.durable:
            _make_durable(server)
        for db in ("fleet", "solo", "quarter"):
            server.create_database(db)
        fleet_url, solo_url = _pg_url(server, "fleet"), _pg_url(server, "solo")
        password = tmp / "pg-password"
        password.write_text("unused: the bench server trusts its socket\n")

        # The cluster (one sandbox for all) and its Git folder, as bench.run_bench makes them.
        desired = list(objects(sizes.objects))
        apps = tmp / "apps"
        apps.mkdir()
        for i in range(0, len(desired), 20):
            (apps / f"app-{i // 20:04d}.yaml").write_text(
                yaml.safe_dump_all(desired[i:i + 20], sort_keys=False))
        t = time.perf_counter()
        for ns in sorted({o["metadata"]["namespace"] for o in desired}):
            sb.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                     field_manager="argocd-controller")
        for obj in desired:
            sb.apply(obj, field_manager="argocd-controller")
        for i, obj in enumerate(desired[::20]):
            sb.apply(_drift(obj, f"d{i}"), field_manager="kubectl", force=True)
        out["sandbox_setup_s"] = round(time.perf_counter() - t, 1)
        kubeconfig = sb.write_kubeconfig(tmp / "kubeconfig")

        fleet = [_writer(tmp, n, kubeconfig, fleet_url, password) for n in names]
        solo = _writer(tmp, "solo", kubeconfig, solo_url, password)
        lite = _writer(tmp, "lite", kubeconfig, None, password)

        def alone(writer: Writer) -> dict[str, Any]:
            return _run_together([writer], apps)

        db_empty = _database_bytes(server, "fleet")
        first = _run_together(fleet, apps)
        solo_first, lite_first = alone(solo), alone(lite)
        out["first_runs_fleet_wall_s"] = round(first["fleet_wall_s"], 1)
        out["first_run_slowest_wall_s"] = round(first["slowest_wall_s"], 1)
        out["first_run_median_wall_s"] = round(first["median_wall_s"], 1)
        out["first_runs_cpu_s_total"] = round(first["cpu_s_total"], 1)
        out["first_run_alone_pg_wall_s"] = round(solo_first["fleet_wall_s"], 2)
        out["first_run_alone_sqlite_wall_s"] = round(lite_first["fleet_wall_s"], 2)
        slowest_first = next(w for w in fleet if w.name == first["slowest"])
        out["first_run_slowest_phases_s"] = slowest_first.phases()
        out["first_run_alone_pg_phases_s"] = solo.phases()
        out["first_run_alone_sqlite_phases_s"] = lite.phases()
        size_first = {n: _schema_bytes(server, "fleet", n) for n in names}
        db_first = _database_bytes(server, "fleet")
        lite_size_first = _sqlite_bytes(lite.folder)
        out["schema_mib_after_first_run"] = round(statistics.median(size_first.values()) / MIB,
                                                  1)
        out["database_mib_empty"] = round(db_empty / MIB, 1)
        out["database_mib_after_first_runs"] = round(db_first / MIB, 1)
        out["sqlite_mib_after_first_run"] = round(lite_size_first / MIB, 1)

        rounds: list[dict[str, Any]] = []
        for r in range(sizes.steady_rounds):
            changed = _apply_changes(sb, desired, r)
            steady = _run_together(fleet, apps)
            solo_run, lite_run = alone(solo), alone(lite)
            lite_wall, lite_cpu = lite_run["slowest_wall_s"], lite_run["slowest_cpu_s"]
            rounds.append({
                "changed": changed, "fleet_wall_s": round(steady["fleet_wall_s"], 2),
                "slowest": steady["slowest"],
                "slowest_wall_s": round(steady["slowest_wall_s"], 2),
                "slowest_cpu_s": round(steady["slowest_cpu_s"], 2),
                "median_wall_s": round(steady["median_wall_s"], 2),
                "alone_pg_wall_s": round(solo_run["slowest_wall_s"], 2),
                "alone_pg_cpu_s": round(solo_run["slowest_cpu_s"], 2),
                "alone_sqlite_wall_s": round(lite_wall, 2),
                "alone_sqlite_cpu_s": round(lite_cpu, 2),
                "slowest_wall_ratio_to_sqlite": round(steady["slowest_wall_s"] / lite_wall, 2),
                "slowest_cpu_ratio_to_sqlite": round(steady["slowest_cpu_s"] / lite_cpu, 2),
                "alone_pg_wall_ratio_to_sqlite": round(solo_run["slowest_wall_s"] / lite_wall,
                                                       2),
                "slowest_phases_s": next(w for w in fleet
                                         if w.name == steady["slowest"]).phases(),
                "alone_pg_phases_s": solo.phases(), "alone_sqlite_phases_s": lite.phases(),
            })
            print(json.dumps({"steady_round": r + 1, **rounds[-1]}), flush=True)
        out["steady_rounds_detail"] = rounds
        if rounds:
            def med(key: str) -> float:
                return round(statistics.median(float(x[key]) for x in rounds), 2)

            out["steady_runs_fleet_wall_s_median"] = med("fleet_wall_s")
            out["steady_run_slowest_wall_s_median"] = med("slowest_wall_s")
            out["steady_run_alone_sqlite_wall_s_median"] = med("alone_sqlite_wall_s")
            out["steady_slowest_wall_ratio_to_sqlite"] = med("slowest_wall_ratio_to_sqlite")
            out["steady_slowest_cpu_ratio_to_sqlite"] = med("slowest_cpu_ratio_to_sqlite")
            out["steady_alone_pg_wall_ratio_to_sqlite"] = med("alone_pg_wall_ratio_to_sqlite")
            out["steady_within_1_5x_wall"] = out["steady_slowest_wall_ratio_to_sqlite"] <= 1.5
            growth = [(_schema_bytes(server, "fleet", n) - size_first[n]) / len(rounds)
                      for n in names]
            db_growth = (_database_bytes(server, "fleet") - db_first) / len(rounds)
            lite_growth = (_sqlite_bytes(lite.folder) - lite_size_first) / len(rounds)
            out["schema_growth_kib_per_steady_run"] = round(statistics.median(growth) / 1024)
            out["database_growth_kib_per_steady_run_per_cluster"] = round(
                db_growth / sizes.clusters / 1024)
            out["extrapolated_schema_mib_per_cluster_month_15min"] = round(
                statistics.median(growth) * RUNS_PER_MONTH / MIB)
            out["extrapolated_database_mib_per_cluster_month_15min"] = round(
                db_growth / sizes.clusters * RUNS_PER_MONTH / MIB)
            out["extrapolated_sqlite_mib_per_cluster_month_15min"] = round(
                lite_growth * RUNS_PER_MONTH / MIB)

        if sizes.clusters > 1:  # one ledger is serve's single-cluster page, not the fleet view
            serve_cfg = fleet[0].config
            for key, value in _serve_times(serve_cfg, fleet_url, names, tmp).items():
                out[f"serve_runs_store_{key}"] = value

        # The quarter, written once through the ledger API, copied into every cluster.
        end = QUARTER_END if sizes.quarter_hours is None else START + timedelta(
            hours=sizes.quarter_hours)
        t = time.perf_counter()
        quarter_file = tmp / "quarter.db"
        totals = build_ledger(quarter_file, end=end)
        out["quarter_runs_per_cluster"] = totals["runs"]
        out["quarter_changes_per_cluster"] = totals["changes"]
        out["quarter_build_sqlite_s"] = round(time.perf_counter() - t, 1)
        quarter_url = _pg_url(server, "quarter")
        q_names = [f"q-{i:02d}" for i in range(sizes.clusters)]
        t = time.perf_counter()
        for n in q_names:
            copy_to_store(quarter_file, quarter_url, n)
        out["quarter_copy_into_store_s"] = round(time.perf_counter() - t, 1)
        out["quarter_database_mib"] = round(_database_bytes(server, "quarter") / MIB, 1)
        report_cfg = _writer(tmp, "reader", kubeconfig, None, password).config
        report_cfg.write_text(report_cfg.read_text().replace(
            "ledger: {", f"ledger: {{password-file: {password}, "))
        html = tmp / "quarter-fleet.html"
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        t = time.perf_counter()
        proc = subprocess.run(_cli(report_cfg, "report", "--ledger", quarter_url, "--from",
                                   START.strftime(stamp), "--to", end.strftime(stamp),
                                   "--output-file", str(html)),
                              capture_output=True, text=True, cwd=tmp, env=_child_env())
        report_s = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(f"report failed ({proc.returncode}): {proc.stderr[-2000:]}")
        out["quarter_fleet_report_s"] = round(report_s, 2)
        out["quarter_fleet_report_html_mib"] = round(html.stat().st_size / MIB, 1)
        out["quarter_fleet_report_within_30s"] = report_s < 30.0
        if sizes.clusters > 1:
            # Every quarter cluster records the name "prod": the view names them prod@q-NN.
            for key, value in _serve_times(report_cfg, quarter_url, q_names, tmp).items():
                out[f"serve_quarter_store_{key}"] = value
    return out


def _parse(argv: list[str]) -> Sizes:
    env = _env_sizes()
    parser = argparse.ArgumentParser(
        prog="python -m bench.fleet_bench",
        description="Fleet store benchmark: concurrent runs into one PostgreSQL, serve's "
                    "fleet overview and a quarter's fleet report (see the module docstring). "
                    "Defaults are the full size (or BENCH_FLEET_* from the environment).")
    parser.add_argument("--clusters", type=int, default=env.clusters,
                        help="writers (clusters) at once, and clusters of the quarter store "
                             "(default: %(default)s)")
    parser.add_argument("--objects", type=int, default=env.objects,
                        help="objects in the (shared) sandbox cluster (default: %(default)s)")
    parser.add_argument("--steady-rounds", type=int, default=env.steady_rounds,
                        help="rounds of steady runs, 1%% changed before each "
                             "(default: %(default)s)")
    parser.add_argument("--quarter-hours", type=int, default=env.quarter_hours,
                        help="hours of hourly runs per quarter cluster (default: the whole "
                             "quarter of bench.report_bench, 2,204 runs)")
    parser.add_argument("--no-durable", dest="durable", action="store_false",
                        default=env.durable,
                        help="keep the test kit's fsync=off instead of a durable server")
    args = parser.parse_args(argv)
    if args.clusters < 1 or args.objects < 100:
        parser.error("--clusters ≥ 1 and --objects ≥ 100")
    return Sizes(args.clusters, args.objects, args.steady_rounds, args.quarter_hours,
                 args.durable)


if __name__ == "__main__":
    print(json.dumps(bench_fleet(_parse(sys.argv[1:])), indent=2))
