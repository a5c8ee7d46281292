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


def test_the_model_guide_commands_use_options_that_exist() -> None:
    """Every `--option` docs/MODELS.md gives `python -m export`, `python -m training.lm` or
    `python -m training` is one the command takes."""
    import dataclasses

    transformers = __import__("pytest").importorskip("transformers")
    from training.__main__ import DataArguments, ModelArguments

    doc = (REPO_ROOT / "docs" / "MODELS.md").read_text()
    lines = "\n".join(re.findall(r"```bash\n(.*?)```", doc, re.S)).replace("\\\n", " ").splitlines()
    fields = {
        f.name
        for cls in (ModelArguments, DataArguments, transformers.TrainingArguments)
        for f in dataclasses.fields(cls)
    }
    sources = {
        "python -m export": (REPO_ROOT / "export" / "__main__.py").read_text(),
        "python -m training.lm": (REPO_ROOT / "training" / "lm.py").read_text(),
    }
    checked = 0
    for line in lines:
        command = line.split("#")[0]
        options = re.findall(r"(?<!\S)--([a-z0-9_-]+)", command)
        for prefix, source in sources.items():
            if prefix + " " in command:
                assert [o for o in options if f'"--{o}"' not in source] == [], line
                checked += len(options)
        if "python -m training " in command:
            assert [o for o in options if o not in fields] == [], line
            checked += len(options)
    assert checked >= 10
