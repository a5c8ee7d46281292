"""Operator commands: `python -m api.admin --help`."""

from __future__ import annotations

import typer

from stt_common.db import make_engine, make_session_factory, session_scope
from stt_common.settings import get_settings
from stt_common.webhooks import signing_secret

app = typer.Typer(help="Operator commands for the speech-to-text service.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Run against the database named by STT_DATABASE_URL."""


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the `whsec_...` secret that signs webhooks (STT_WEBHOOK_SECRET, or the one the service made)."""
    settings = get_settings()
    with session_scope(make_session_factory(make_engine(settings.database_url))) as session:
        typer.echo(signing_secret(session, settings.webhook_secret))


if __name__ == "__main__":
    app()
