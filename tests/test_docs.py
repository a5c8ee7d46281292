"""The docs match the code: every setting and every error code is documented."""

from __future__ import annotations

import re

from stt_common.settings import REPO_ROOT, Settings

SOURCES = [p for d in ("api", "worker", "stt_common") for p in (REPO_ROOT / d).rglob("*.py")]


def test_every_setting_is_in_the_configuration_doc() -> None:
    doc = (REPO_ROOT / "docs" / "CONFIGURATION.md").read_text()
    for name in Settings.model_fields:
        assert f"`STT_{name.upper()}`" in doc, name


def test_every_error_code_is_in_the_api_doc() -> None:
    doc = (REPO_ROOT / "docs" / "API.md").read_text()
    codes: set[str] = set()
    for path in SOURCES:
        text = path.read_text()
        codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', text))
        codes |= set(re.findall(r'_fail\([^)]*?"([a-z_]+)"', text))
        codes |= set(re.findall(r'"(retries_exhausted|database_unavailable|worker_lost)"', text))
    codes -= {"invalid_input", "internal_error", "not_found", "conflict", "service_unavailable", "model_error"}
    assert len(codes) >= 12
    missing = sorted(c for c in codes if f"`{c}`" not in doc)
    assert missing == []


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
