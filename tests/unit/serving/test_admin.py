"""serving/admin.py: the key that locks Triton's control plane (issue 28) is refused, naming its setting, when it is
a placeholder or too weak, before any server is asked. The lock on real Tritons:
tests/integration/serving/test_triton_admin.py."""

from __future__ import annotations

import pytest

from sensevoice_pipeline import releases
from sensevoice_pipeline.serving.admin import KEY_ENV, AdminKeyError


@pytest.mark.parametrize(
    "value, message",
    [
        ("change-me-triton-admin-key", "still the .env.example placeholder"),
        ("short", "at least 16 characters"),
    ],
)
def test_a_placeholder_or_weak_key_is_refused_naming_its_setting(monkeypatch, value, message):
    monkeypatch.setenv(KEY_ENV, value)
    with pytest.raises(AdminKeyError, match=f"{KEY_ENV}: .*{message}"):
        releases.TritonControl("127.0.0.1:1")
