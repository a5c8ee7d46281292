"""The docs match the code: every setting and every error code is documented."""

from __future__ import annotations

import re

from stt_common.errors import ErrorCode
from stt_common.settings import REPO_ROOT, Settings

SOURCES = [p for d in ("api", "worker", "stt_common") for p in (REPO_ROOT / d).rglob("*.py")]


def test_every_setting_is_in_the_configuration_doc() -> None:
    doc = (REPO_ROOT / "docs" / "CONFIGURATION.md").read_text()
    for name in Settings.model_fields:
        assert f"`STT_{name.upper()}`" in doc, name


def test_every_error_code_is_one_of_the_enum_and_documented() -> None:
    """Codes are data (stt_common.errors.ErrorCode): each one is explained in docs/API.md, and no module
    spells a code as a bare string instead."""
    doc = (REPO_ROOT / "docs" / "API.md").read_text()
    assert len(ErrorCode) >= 50
    assert sorted(c.value for c in ErrorCode if f"`{c.value}`" not in doc) == []
    spelled = re.compile(r'\b(?:error_)?code\s*[:=]\s*(?:str\s*=\s*)?"[a-z_]+"|_fail\([^)]*"[a-z_]+"')
    for path in SOURCES:
        if path != REPO_ROOT / "stt_common" / "errors.py":
            assert not spelled.findall(path.read_text()), path


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make demo" in readme
    assert "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
