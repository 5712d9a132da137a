"""`tcr-relay`: the NATS JetStream relay's command line."""

from __future__ import annotations

import typer

app = typer.Typer(help="tcr relay: publish the public feeds to NATS JetStream", no_args_is_help=True)


@app.command()
def serve() -> None:
    """Relay the registry and subsidy feeds to NATS JetStream (settings from TCR_*) until SIGTERM or Ctrl-C."""
    from tcr_relay.bootstrap import serve as run_relay

    run_relay()


@app.command()
def version() -> None:
    """Print the relay's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        typer.echo(dist_version("tcr"))
    except PackageNotFoundError:
        typer.echo(dist_version("tcr-relay"))


def main() -> None:
    app()
