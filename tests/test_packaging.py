"""Each deployable installs and imports only what it needs: no torch anywhere near the api or worker."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from stt_common.settings import REPO_ROOT

FORBIDDEN = {
    "api.main": {"onnxruntime", "torch", "transformers", "worker"},
    "worker.celery_app": {"fastapi", "starlette", "torch", "transformers", "api"},
}


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_entry_modules_do_not_import_forbidden_packages(module: str) -> None:
    code = f"import sys, json, {module}; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "STT_DATABASE_URL": "sqlite:///:memory:"},
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert loaded & FORBIDDEN[module] == set()
    assert ("onnxruntime" in loaded) == (module == "worker.celery_app")


def _name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req, maxsplit=1)[0].lower().replace("_", "-")


def closure(requirements: list[str], extras_of_project: dict[str, list[str]]) -> set[str]:
    """Every distribution an install of `requirements` pulls in, walked through installed metadata."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name == "turkish-stt":
            for extra in req.extras:
                todo += [Requirement(r) for r in extras_of_project[extra]]
            continue
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for raw in requires:
            dep = Requirement(raw)
            if (
                dep.marker is None
                or dep.marker.evaluate({"extra": ""})
                or any(dep.marker.evaluate({"extra": e}) for e in req.extras)
            ):
                todo.append(dep)
    return seen


@pytest.fixture(scope="module")
def project() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def test_worker_install_pulls_neither_torch_transformers_nor_fastapi(project: dict) -> None:  # type: ignore[type-arg]
    deps = closure(
        project["dependencies"] + project["optional-dependencies"]["worker"], project["optional-dependencies"]
    )
    assert "onnxruntime" in deps
    assert "celery" in deps
    assert deps & {"torch", "transformers", "fastapi", "starlette"} == set()


def test_api_install_pulls_neither_onnxruntime_nor_torch(project: dict) -> None:  # type: ignore[type-arg]
    deps = closure(project["dependencies"] + project["optional-dependencies"]["api"], project["optional-dependencies"])
    assert "fastapi" in deps
    assert "uvicorn" in deps
    assert deps & {"onnxruntime", "torch", "transformers"} == set()


def test_torch_is_pinned_to_the_cpu_build_on_disk(project: dict) -> None:  # type: ignore[type-arg]
    for extra in ("train", "export"):
        torch = [r for r in project["optional-dependencies"][extra] if _name(r) == "torch"]
        assert torch == ["torch==2.13.0"], extra


def test_the_version_is_written_once_and_read_from_the_installed_metadata() -> None:
    import stt_common
    from api.main import create_app

    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert stt_common.__version__ == metadata.version("turkish-stt") == declared
    assert create_app().version == declared
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert f"## {declared}" in changelog or "## Unreleased" in changelog
