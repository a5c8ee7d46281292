"""Operator commands: `python -m api.admin --help`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from stt_common import api_keys, retention
from stt_common.db import make_engine, make_session_factory, session_scope
from stt_common.models import DEFAULT_TENANT
from stt_common.settings import get_settings
from stt_common.webhooks import signing_secret

app = typer.Typer(help="Operator commands for the speech-to-text service.", no_args_is_help=True)
keys = typer.Typer(
    help="API keys: each belongs to one tenant and sees only that tenant's jobs and batches.", no_args_is_help=True
)
app.add_typer(keys, name="keys")


@contextmanager
def _session() -> Iterator[Session]:
    with session_scope(make_session_factory(make_engine(get_settings().database_url))) as session:
        yield session


@app.callback()
def main() -> None:
    """Run against the database named by STT_DATABASE_URL."""


@app.command("webhook-secret")
def webhook_secret(
    tenant: Annotated[
        str, typer.Option(help="Whose secret (each tenant's events are signed with its own).")
    ] = DEFAULT_TENANT,
) -> None:
    """Print the `whsec_...` secret that signs a tenant's webhooks (STT_WEBHOOK_SECRET if set, else the one
    the service made for the tenant)."""
    with _session() as session:
        typer.echo(signing_secret(session, get_settings().webhook_secret, tenant))


@app.command("retention")
def retention_policy(
    tenant: Annotated[str, typer.Option(help="Whose policy.")] = DEFAULT_TENANT,
    audio_seconds: Annotated[
        float | None, typer.Option(min=0, help="Keep audio this long after a job ends (0: delete when it ends).")
    ] = None,
    transcript_seconds: Annotated[
        float | None, typer.Option(min=0, help="Keep transcripts this long after a job ends.")
    ] = None,
    default: Annotated[
        bool, typer.Option("--default", help="Drop the tenant's own policy: the defaults apply.")
    ] = False,
) -> None:
    """Show a tenant's retention, or set its own (overriding STT_AUDIO_RETENTION_SECONDS and
    STT_TRANSCRIPT_RETENTION_SECONDS for that tenant; a value left out keeps the default)."""
    settings = get_settings()
    with _session() as session:
        if default or audio_seconds is not None or transcript_seconds is not None:
            retention.set_policy(session, tenant, audio_seconds, transcript_seconds)
            session.flush()
        policy = retention.policy_for(session, settings, tenant)

    def shown(seconds: float | None) -> str:
        return "until the job is deleted" if seconds is None else f"{seconds:g} s after the job ends"

    typer.echo(
        f"{tenant}: audio kept {shown(policy.audio_seconds)}; transcripts kept {shown(policy.transcript_seconds)}"
    )


@keys.command("create")
def create_key(
    tenant: Annotated[str, typer.Option(help="The tenant the key acts for (letters, digits, . _ -).")],
    name: Annotated[str | None, typer.Option(help="A label, e.g. where the key is used.")] = None,
    rate_limit: Annotated[
        int | None, typer.Option(min=1, help="Requests per minute; default STT_RATE_LIMIT_PER_MINUTE.")
    ] = None,
) -> None:
    """Make a key and print it. It is shown only this once: only a hash of it is kept."""
    try:
        with _session() as session:
            made = api_keys.create(session, tenant, name, rate_limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tenant") from None
    typer.echo(made.plaintext)


@keys.command("list")
def list_keys(tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None) -> None:
    """Key ids, tenants, names, limits and whether revoked (never the keys themselves)."""
    with _session() as session:
        for key in api_keys.listing(session, tenant):
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
            limit = f"{key.rate_limit_per_minute}/min" if key.rate_limit_per_minute else "default limit"
            typer.echo(
                f"{key.id}\t{key.tenant}\t{key.name or '-'}\t{limit}\t{state}\tcreated {key.created_at:%Y-%m-%d %H:%M}"
            )


@keys.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key.")]) -> None:
    """Revoke a key at once: requests with it get 401 `invalid_api_key`."""
    with _session() as session:
        revoked = api_keys.revoke(session, key_id)
    if not revoked:
        typer.echo(f"no active key {key_id[:12]!r}", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


if __name__ == "__main__":
    app()
