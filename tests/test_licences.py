"""scripts/check_licences.py: the api and worker installs pass the allowlist, and a package outside it
(a tiny distribution planted here, next to real ones) fails the check with its name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from stt_common.settings import REPO_ROOT


def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_licences", REPO_ROOT / "scripts" / "check_licences.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def plant(site: Path, name: str, licence_lines: str, requires: tuple[str, ...] = ()) -> None:
    """A distribution as pip leaves it: name-version.dist-info/METADATA."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"  # as installers name the folder
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0", *licence_lines.splitlines()]
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_what_the_api_and_worker_install_is_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert checker().main([]) == 0
    out = capsys.readouterr().out
    assert "0 outside the allowlist" in out
    assert int(out.split("licences: ")[1].split()[0]) > 40  # the whole closure, not the roots alone


@pytest.mark.parametrize(
    ("licence", "verdict"),
    [
        ("License-Expression: GPL-3.0-only", "NOT ALLOWED"),
        ("License-Expression: MIT AND AGPL-3.0-or-later", "NOT ALLOWED"),
        ("License: see the website", "UNREADABLE"),
        ("", "UNREADABLE"),
    ],
)
def test_a_package_outside_the_allowlist_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], licence: str, verdict: str
) -> None:
    site = tmp_path / "site"
    plant(site, "our-image", "License-Expression: MIT", requires=("fastapi", "planted-dep"))
    plant(site, "planted-dep", licence)
    assert checker().main(["--root", "our-image", "--path", str(site), "--extras", ""]) == 1
    out = capsys.readouterr().out
    assert "planted-dep 1.0:" in out
    assert verdict in out
    assert "starlette" not in out  # fastapi's own requirements were followed and passed


def test_a_planted_package_with_an_allowed_licence_passes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    plant(site, "our-image", "License-Expression: Apache-2.0", requires=("planted-dep",))
    plant(site, "planted-dep", "License: MIT License\nClassifier: License :: OSI Approved :: MIT License")
    assert checker().main(["--root", "our-image", "--path", str(site), "--extras", ""]) == 0


def test_the_bundled_model_card_states_its_licence_and_sources() -> None:
    import yaml

    from training.model_card import FRONT_MATTER, PROVENANCE

    for manifest in (REPO_ROOT / "models").glob("*/manifest.json"):  # the recognizer models
        card = manifest.with_name("README.md")
        text = card.read_text(encoding="utf-8")
        assert text.startswith(FRONT_MATTER), card  # as training/model_card.py writes it
        front = yaml.safe_load(text.split("---")[1])
        assert front["license"] == "cc-by-sa-4.0"
        assert "google-research-datasets/turkish-treebanks" in front["datasets"]
        assert "rspeer/wordfreq" in front["datasets"]
        assert PROVENANCE in text
        assert f"models/{card.parent.name}/" in (REPO_ROOT / "NOTICE").read_text(encoding="utf-8")


def test_the_formatter_card_states_its_licence_and_sources() -> None:
    import yaml

    card = (REPO_ROOT / "models" / "formatter-tr" / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0"  # treebank text and Zemberek's lexicon, both Apache-2.0
    assert front["datasets"] == ["google-research-datasets/turkish-treebanks"]
    assert "Zemberek" in card
    notice = (REPO_ROOT / "NOTICE").read_text(encoding="utf-8")
    assert "models/formatter-tr/" in notice
    assert "zemberek-nlp" in notice


def test_the_licence_file_is_the_one_the_package_declares() -> None:
    import tomllib

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT"
    assert (REPO_ROOT / "LICENSE").read_text().startswith("MIT License")
    for document in ("NOTICE", "SECURITY.md", "CONTRIBUTING.md", "samples/README.md"):
        assert (REPO_ROOT / document).stat().st_size > 500, document
