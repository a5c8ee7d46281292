"""Hostile requests (not hostile files: tests/test_hostile.py has those): form fields built to break
the tenant's own jobs, zip bombs, bodies sent without a key, slow clients and requests that wait.
Each is refused with a code and leaves nothing behind."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from stt_common.models import Batch, Job
from tests.conftest import SAMPLES, Stack

CLIP = (SAMPLES / "clip01.wav").read_bytes()

HOSTILE_METADATA = {
    "300 nested lists": "{\"k\": " + "[" * 300 + "]" * 300 + "}",
    "2000 nested lists": "{\"k\": " + "[" * 2000 + "]" * 2000 + "}",
    "17 nested objects": "{\"k\": " * 17 + "1" + "}" * 17,
    "NaN": '{"score": NaN}',
    "Infinity": '{"score": Infinity}',
    "-Infinity": '{"score": -Infinity}',
}


def _rows(stack: Stack) -> tuple[int, int]:
    with stack.session_factory() as session:
        return session.query(Job).count(), session.query(Batch).count()


@pytest.mark.parametrize("what", sorted(HOSTILE_METADATA))
def test_metadata_too_deep_or_not_json_is_refused_before_anything_is_made(stack: Stack, what: str) -> None:
    metadata = HOSTILE_METADATA[what]
    with TestClient(create_app(stack.settings)) as client:
        for path, files in (("/v1/jobs", {"file": ("a.wav", CLIP)}), ("/v1/batches", {"files": ("a.wav", CLIP)})):
            r = client.post(path, files=files, data={"metadata": metadata})
            assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_metadata"), (path, r.text)
        assert client.get("/v1/jobs").status_code == 200
    assert _rows(stack) == (0, 0)
    assert stack.storage.list_keys() == []


def test_metadata_at_the_depth_limit_and_with_brackets_in_strings_is_kept_as_given(stack: Stack) -> None:
    metadata = {"note": "[[[[{{{{ \"quoted\" \\", "deep": json.loads("[" * 15 + "]" * 15)}
    with TestClient(create_app(stack.settings)) as client:
        r = client.post("/v1/jobs", files={"file": ("a.wav", CLIP)}, data={"metadata": json.dumps(metadata)})
        assert r.status_code == 202, r.text
        assert client.get(f"/v1/jobs/{r.json()['id']}").json()["metadata"] == metadata
        assert client.get("/v1/jobs").status_code == 200
