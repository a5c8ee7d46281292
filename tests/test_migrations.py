"""Alembic is the only way the schema is made: one head, upgrade from empty, models match, downgrade."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from stt_common.db import Base
from stt_common.migrate import alembic_config, upgrade
from stt_common.settings import REPO_ROOT


def test_there_is_a_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    # `database_url` is already upgraded to head from empty by the fixture.
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    engine.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    config = alembic_config(database_url)
    command.downgrade(config, "base")
    engine = create_engine(database_url)
    assert "jobs" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert "jobs" in inspect(engine).get_table_names()
    engine.dispose()


def test_no_upgrade_waits_for_another_process_to_migrate(tmp_path: Path) -> None:
    """An api pod's init container: it never migrates, it waits until the migration Job has."""
    url = f"sqlite:///{tmp_path / 'stt.db'}"
    env = {**os.environ, "STT_DATABASE_URL": url}
    run = [sys.executable, "-m", "stt_common.migrate", "--wait", "3", "--no-upgrade"]
    waited = subprocess.run(run, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert waited.returncode != 0
    assert "not at head" in waited.stderr
    upgrade(url)
    done = subprocess.run(run, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
