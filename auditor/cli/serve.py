"""``drift-auditor serve``: the read-only web UI over one ledger or a fleet of them
(:mod:`auditor.web.serve`), until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import threading

import click

from auditor.cli.common import guarded, load_config


@click.command("serve")
@click.option("--host", help="Address to bind (default: serve.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: serve.port, 8080; 0 picks one).")
@click.option("--ledger", "ledger_paths", type=click.Path(dir_okay=False), multiple=True,
              metavar="FILE|URL[#CLUSTER]",
              help="Ledger file, or the fleet store: postgresql://HOST/DB#CLUSTER for one "
                   "cluster, postgresql://HOST/DB alone for all of its clusters (default: "
                   "serve.ledgers, else ledger.url and ledger.cluster, else ledger.path); "
                   "repeat it, one per cluster, for a fleet view.")
@click.option("--reports-dir", type=click.Path(file_okay=False),
              help="Reports folder (default: reports.directory).")
@click.option("--tls-cert", "tls_cert", type=click.Path(dir_okay=False),
              help="Serve HTTPS with this certificate chain, PEM (default: serve.tls-cert-file).")
@click.option("--tls-key", "tls_key", type=click.Path(dir_okay=False),
              help="The certificate's private key, PEM (default: serve.tls-key-file).")
def serve_cmd(host: str | None, port: int | None, ledger_paths: tuple[str, ...],
              reports_dir: str | None, tls_cert: str | None, tls_key: str | None) -> None:
    """Read-only web UI over the ledger, with /metrics and /healthz (Ctrl-C stops it)."""

    def body() -> None:
        import signal

        from auditor.web.serve import ledger_list, make_server, token_from

        overrides = {k: v for k, v in (("tls_cert_file", tls_cert), ("tls_key_file", tls_key))
                     if v}
        cfg = load_config({"serve": overrides} if overrides else None)
        served = ledger_list(cfg, ledger_paths=ledger_paths)
        token = token_from(cfg, os.environ)
        server = make_server(cfg, ledger_paths=served, host=host, port=port, token=token,
                             reports_dir=reports_dir)
        # SIGTERM (a pod's stop) ends serve_forever from another thread, as shutdown requires;
        # installed before the address is announced, so whoever reads it may stop us at once.
        signal.signal(signal.SIGTERM,
                      lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
        bound_host, bound_port = server.server_address[:2]
        remote = str(bound_host) not in ("127.0.0.1", "::1", "localhost")
        if remote and token is None:
            click.echo(f"drift-auditor serve: warning: listening on {bound_host!s} without a "
                       "bearer token (serve.token-env or serve.token-file): whoever reaches the "
                       "port reads the ledger", err=True)
        elif remote and server.tls is None:
            click.echo(f"drift-auditor serve: warning: listening on {bound_host!s} without TLS "
                       "(serve.tls-cert-file, serve.tls-key-file): the bearer token crosses the "
                       "network in clear text", err=True)
        click.echo(f"drift-auditor serve: {server.scheme}://{bound_host!s}:{bound_port} "
                   f"({'ledgers ' if len(served) > 1 else 'ledger '}"
                   f"{', '.join(str(p) for p in served)}"
                   f"{', bearer token required' if token is not None else ''})", err=True)
        try:
            server.serve_forever()
        finally:
            server.server_close()

    guarded(body)


COMMANDS = (serve_cmd,)
