"""Flower, started so that it cannot be left open: `python -m worker.flower [--address A] [--port P]`.

Flower's API can shut workers down and revoke tasks. Listening anywhere but on loopback, it needs a login:
`FLOWER_BASIC_AUTH=user:password` (a comma-separated list for several users) whose passwords are not
well-known placeholders, or an OAuth provider (`FLOWER_AUTH_PROVIDER`). Without one it refuses to start,
as the api refuses placeholder secrets.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

PLACEHOLDER_PASSWORDS = {"", "admin", "change-me", "changeme", "flower", "password", "secret"}
MIN_PASSWORD_LENGTH = 12


def login_problem(address: str, environ: dict[str, str]) -> str | None:
    """Why Flower must not start with these settings, or None."""
    if _loopback(address) or environ.get("FLOWER_AUTH_PROVIDER"):
        return None
    pairs = [p for p in environ.get("FLOWER_BASIC_AUTH", "").split(",") if p.strip()]
    if not pairs:
        return (
            f"Flower would listen on {address} without a login; set FLOWER_BASIC_AUTH=user:password "
            "(its API can shut workers down and revoke tasks)"
        )
    for pair in pairs:
        user, sep, password = pair.partition(":")
        if not sep or not user:
            return "FLOWER_BASIC_AUTH must be user:password (comma-separated for several users)"
        if password.lower() in PLACEHOLDER_PASSWORDS or len(password) < MIN_PASSWORD_LENGTH:
            return (
                f"FLOWER_BASIC_AUTH: the password of {user!r} is a placeholder or shorter than "
                f"{MIN_PASSWORD_LENGTH} characters"
            )
    return None


def _loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m worker.flower", description=__doc__)
    parser.add_argument("--address", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=5555, help="Port to listen on (default 5555).")
    args = parser.parse_args(argv)
    problem = login_problem(args.address, dict(os.environ))
    if problem:
        sys.exit(f"flower: refusing to start: {problem}")
    celery = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "flower",
        f"--address={args.address}",
        f"--port={args.port}",
    ]
    os.execv(celery[0], celery)


if __name__ == "__main__":
    main()
