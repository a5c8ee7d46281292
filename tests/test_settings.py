"""Settings: one machine works on the defaults; STT_* variables override them."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from stt_common.settings import REPO_ROOT, Settings


def test_defaults_run_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("STT_")]:
        monkeypatch.delenv(key)
    s = Settings(_env_file=None)
    assert s.database_url.startswith("sqlite:///")
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.models_dir / s.default_model / "manifest.json").is_file()
    assert s.models_dir == REPO_ROOT / "models"
    assert s.max_upload_bytes > 0
    assert s.max_audio_seconds > 0
    assert s.onnx_threads * s.worker_concurrency <= (os.cpu_count() or 1)


def test_environment_overrides_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_MAX_AUDIO_SECONDS", "12.5")
    monkeypatch.setenv("STT_WORKER_MODELS", '["a", "b"]')
    monkeypatch.setenv("STT_WORKER_CONCURRENCY", "4")
    s = Settings(_env_file=None)
    assert s.max_audio_seconds == 12.5
    assert s.worker_models == ["a", "b"]
    assert s.onnx_threads == max(1, (os.cpu_count() or 1) // 4)


def test_invalid_values_fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_MODEL_VARIANT", "fp16")
    with pytest.raises(ValidationError, match="int8"):
        Settings(_env_file=None)
    monkeypatch.setenv("STT_MODEL_VARIANT", "int8")
    monkeypatch.setenv("STT_WORKER_CONCURRENCY", "0")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("raw", "hosts"),
    [
        ("127.0.0.1", ["127.0.0.1"]),
        ("127.0.0.1, 10.0.0.0/8,", ["127.0.0.1", "10.0.0.0/8"]),
        ('["::1", "hooks.internal"]', ["::1", "hooks.internal"]),
        ("", []),
    ],
)
def test_list_settings_are_json_or_comma_separated(monkeypatch: pytest.MonkeyPatch, raw: str, hosts: list[str]) -> None:
    monkeypatch.setenv("STT_WEBHOOK_ALLOWED_HOSTS", raw)
    monkeypatch.setenv("STT_WEBHOOK_RETRY_SCHEDULE", "1, 2.5")
    s = Settings(_env_file=None)
    assert s.webhook_allowed_hosts == hosts
    assert s.webhook_retry_schedule == [1.0, 2.5]


def test_a_broken_json_list_setting_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STT_WEBHOOK_ALLOWED_HOSTS", '["127.0.0.1"')
    with pytest.raises(ValidationError, match="comma-separated list works too"):
        Settings(_env_file=None)
