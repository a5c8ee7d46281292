"""Pre-start step: wait for the database, then `alembic upgrade head`; wait for the audio store too, and
with --create-bucket make the `STT_STORAGE_URL` bucket if it does not exist (compose's own S3 server
starts empty; on AWS, create the bucket with its policies yourself).

python -m stt_common.migrate [--wait SECONDS] [--create-bucket]
python -m stt_common.migrate --wait SECONDS --no-upgrade    # wait until another process has migrated
"""

from __future__ import annotations

import argparse
import logging
import time

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from stt_common.db import make_engine
from stt_common.errors import StorageUnavailable
from stt_common.settings import REPO_ROOT, get_settings
from stt_common.storage import S3Storage, Storage, open_storage

log = logging.getLogger(__name__)


def alembic_config(url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(REPO_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def wait_for_database(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    engine = make_engine(url)
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the database did not answer within {seconds} s: {exc}") from exc
                log.info("waiting for the database: %s", exc.__class__.__name__)
                time.sleep(1)
    finally:
        engine.dispose()


def is_at_head(url: str) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config(url)).get_heads())
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return set(MigrationContext.configure(conn).get_current_heads()) == heads
    finally:
        engine.dispose()


def wait_for_head(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if is_at_head(url):
                return
            problem = "not migrated yet"
        except Exception as exc:
            problem = exc.__class__.__name__
        if time.monotonic() > deadline:
            raise RuntimeError(f"the database schema is not at head after {seconds} s ({problem})")
        log.info("waiting for the schema to reach head: %s", problem)
        time.sleep(2)


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait", type=float, default=30.0, help="Seconds to wait for the database and the store.")
    parser.add_argument("--create-bucket", action="store_true", help="Create the S3 bucket if it is missing.")
    parser.add_argument(
        "--no-upgrade",
        action="store_true",
        help="Only wait (up to --wait s) until the schema is at head: an api pod's init container, while "
        "the migration Job upgrades it.",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    settings = get_settings()
    if args.no_upgrade:
        wait_for_head(settings.database_url, args.wait)
        log.info("database schema is at head")
        return
    wait_for_database(settings.database_url, args.wait)
    upgrade(settings.database_url)
    log.info("database schema is at head")
    storage = open_storage(settings)
    wait_for_storage(storage, args.wait, create=args.create_bucket)
    log.info("audio store %r answers", storage)


def wait_for_storage(storage: Storage, seconds: float, *, create: bool = False) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if create and isinstance(storage, S3Storage):
                storage.create_bucket()
            storage.check()
            return
        except StorageUnavailable as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the audio store did not answer within {seconds} s: {exc.message}") from exc
            log.info("waiting for the audio store: %s", exc.message)
            time.sleep(1)


if __name__ == "__main__":
    main()
