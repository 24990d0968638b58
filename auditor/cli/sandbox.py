"""``drift-auditor sandbox``: the embedded Kubernetes API server in the foreground, for the
demo, the tests and trying the tool without a cluster."""

from __future__ import annotations

import click

from auditor.cli.common import handle_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@click.option("--seed", "seed", type=click.Path(exists=True),
              help="Objects to load at start (a List/manifest file or a folder).")
@click.option("--kubeconfig-out", type=click.Path(dir_okay=False),
              help="Write a kubeconfig for the sandbox here.")
@handle_errors
def sandbox(host: str, port: int, seed: str | None, kubeconfig_out: str | None) -> None:
    """Run the local sandbox Kubernetes API server in the foreground (Ctrl-C stops it)."""
    import signal
    import threading

    from auditor.live.snapshot import read_snapshot
    from auditor.sandbox import Sandbox

    sb = Sandbox(host=host, port=port)
    if seed:
        sb.load(read_snapshot(seed))
    sb.start()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"sandbox API server listening on {sb.url}")
    if kubeconfig_out:
        click.echo(f"kubeconfig written to {sb.write_kubeconfig(kubeconfig_out)}")
    try:
        stop.wait()
    finally:
        sb.stop()


COMMANDS = (sandbox,)
