"""No Docker engine runs here, so check what can be checked without one: the compose file parses, every
image is built from files that exist, and every command a container runs names a real module."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stt_common.settings import REPO_ROOT, Settings
from worker.flower import login_problem

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def dockerfile(name: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (REPO_ROOT / name).read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, arg = line.partition(" ")
            pairs.append((op.upper(), arg.strip()))
    return pairs


def image_of(service: dict) -> str | None:  # type: ignore[type-arg]
    build = service.get("build")
    return build["dockerfile"] if isinstance(build, dict) else None


def copied(name: str) -> set[str]:
    """Top-level paths the image's COPY instructions take from the build context."""
    return {src for op, arg in dockerfile(name) if op == "COPY" for src in arg.split()[:-1]}


def default_command(name: str) -> list[str]:
    (cmd,) = [arg for op, arg in dockerfile(name) if op == "CMD"]
    return list(json.loads(cmd))  # exec (JSON array) form


def test_the_stack_has_every_part() -> None:
    assert {"api", "worker", "redis", "postgres", "flower", "migrate"} <= set(SERVICES)
    assert image_of(SERVICES["api"]) == "Dockerfile.api"
    assert image_of(SERVICES["migrate"]) == "Dockerfile.api"
    assert image_of(SERVICES["worker"]) == "Dockerfile.worker"
    assert image_of(SERVICES["flower"]) == "Dockerfile.worker"
    for name in ("redis", "postgres"):
        assert "healthcheck" in SERVICES[name]
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", ["Dockerfile.api", "Dockerfile.worker"])
def test_dockerfiles_are_slim_non_root_and_copy_files_that_exist(name: str) -> None:
    ops = dockerfile(name)
    assert ops[0] == ("FROM", "python:3.11-slim")
    assert any(op == "USER" and arg != "root" for op, arg in ops)
    assert any(op == "HEALTHCHECK" for op, _ in ops)
    for op, arg in ops:
        if op == "COPY":
            for src in arg.split()[:-1]:
                assert (REPO_ROOT / src).exists(), f"{name} copies missing {src}"
    installs = " ".join(arg for op, arg in ops if op == "RUN" and "pip install" in arg)
    extras = set(re.findall(r"\.\[([a-z,]+)\]", installs)[0].split(","))
    assert extras == ({"api"} if name == "Dockerfile.api" else {"worker"})  # never export/train/all: no torch


def check_command(argv: list[str], files_in_image: set[str]) -> None:
    """The program exists here and the module it names is importable and shipped in the image."""
    program = argv[0]
    if program == "python":
        assert argv[1] == "-m"
        module = argv[2]
    elif program == "uvicorn":
        module, attr = argv[1].split(":")
        assert hasattr(importlib.import_module(module), attr)
    elif program == "celery":
        assert argv[1] == "-A"
        module = argv[2]
        assert argv[3] in {"worker", "flower", "inspect"}
    elif program in {"sh", "redis-server", "redis-cli", "pg_isready", "CMD-SHELL", "CMD"}:
        return
    else:
        raise AssertionError(f"unknown program {program}")
    assert importlib.util.find_spec(module) is not None, module
    assert module.split(".")[0] in files_in_image, f"{module} is not copied into the image"


BUILT = sorted(name for name, service in SERVICES.items() if image_of(service))


@pytest.mark.parametrize("name", BUILT)
def test_every_container_command_names_a_real_module(name: str) -> None:
    service = SERVICES[name]
    image = image_of(service)
    assert image is not None
    check_command(service.get("command") or default_command(image), copied(image))
    health = next(a for op, a in dockerfile(image) if op == "HEALTHCHECK")
    cmd = json.loads(health.split("CMD", 1)[1].strip())
    if cmd[0] == "sh":
        check_command(shlex.split(cmd[2]), copied(image))


def test_services_we_do_not_build_run_pinned_images() -> None:
    pulled = {name: service["image"] for name, service in SERVICES.items() if name not in BUILT}
    assert set(pulled) == {"redis", "postgres", "s3"}
    assert all(re.fullmatch(r"[a-z]+(/[a-z0-9-]+)?:\d+[\w.-]*", image) for image in pulled.values()), pulled


def test_compose_sets_only_real_settings() -> None:
    fields = {f"STT_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        env = service.get("environment") or {}
        for key in env:
            if key.startswith("STT_"):
                assert key in fields, f"{name} sets unknown setting {key}"


def test_flower_and_celery_cli_exist() -> None:
    assert importlib.util.find_spec("flower") is not None
    assert Path(REPO_ROOT / "worker" / "celery_app.py").is_file()


def test_compose_publishes_flower_on_loopback_with_no_default_login() -> None:
    flower = SERVICES["flower"]
    assert flower["command"][:3] == ["python", "-m", "worker.flower"]
    assert all(str(port).startswith("127.0.0.1:") for port in flower["ports"])
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == "${FLOWER_BASIC_AUTH:-}"  # no password of ours


@pytest.mark.parametrize(
    ("address", "auth", "refused"),
    [
        ("0.0.0.0", "", True),
        ("0.0.0.0", "admin:change-me", True),
        ("0.0.0.0", "ops:short", True),
        ("0.0.0.0", "nocolon", True),
        ("0.0.0.0", "ops:a-long-real-password,dev:changeme", True),
        ("0.0.0.0", "ops:a-long-real-password", False),
        ("::", "", True),
        ("127.0.0.1", "", False),
        ("localhost", "", False),
        ("::1", "", False),
    ],
)
def test_flower_refuses_to_listen_beyond_loopback_without_a_real_login(address: str, auth: str, refused: bool) -> None:
    assert (login_problem(address, {"FLOWER_BASIC_AUTH": auth}) is not None) == refused


def test_flower_exits_saying_why_instead_of_serving_without_a_login() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    out = subprocess.run(
        [sys.executable, "-m", "worker.flower", "--address", "0.0.0.0", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 1
    assert "refusing to start" in out.stderr
    assert "FLOWER_BASIC_AUTH" in out.stderr


def interpolated(text: str) -> str:
    """Compose's `${NAME:-default}` with nothing set: the defaults."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_api_and_workers_share_no_volume_only_the_s3_store() -> None:
    for name in ("api", "worker"):
        assert "volumes" not in SERVICES[name], f"{name} mounts a volume: the hosts must share only the store"
        env = SERVICES[name]["environment"]
        assert env["STT_STORAGE_URL"].startswith("s3://")
        assert env["AWS_ENDPOINT_URL"] == "http://s3:8333"
    assert "--create-bucket" in SERVICES["migrate"]["command"]
    assert SERVICES["migrate"]["depends_on"]["s3"]["condition"] == "service_healthy"
    assert "healthcheck" in SERVICES["s3"]
    assert "-s3.config=/etc/seaweedfs/s3.json" in SERVICES["s3"]["command"]
    identities = json.loads(interpolated(COMPOSE["configs"]["s3-identities"]["content"]))
    (identity,) = identities["identities"]
    env = SERVICES["api"]["environment"]
    assert identity["credentials"] == [
        {"accessKey": interpolated(env["AWS_ACCESS_KEY_ID"]), "secretKey": interpolated(env["AWS_SECRET_ACCESS_KEY"])}
    ]
