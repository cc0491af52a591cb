"""The local stack's settings from the environment."""

from __future__ import annotations

import pytest

from .config import ConfigError, admin_key_from_env, generate_admin_key, sha256_hex


def test_a_generated_admin_key_is_taken_back():
    key = generate_admin_key()
    assert admin_key_from_env({"WEBHOOKS_ADMIN_KEY": key}).sha256 == sha256_hex(key)


@pytest.mark.parametrize(
    "key",
    ["whk_" + "a" * 38, "whk_" + "a" * 41, "key_" + "a" * 40, "whk_" + "a" * 39 + "-", "a" * 44],
)
def test_an_admin_key_the_api_would_refuse_is_refused_at_start(key):
    with pytest.raises(ConfigError, match="WEBHOOKS_ADMIN_KEY must be whk_"):
        admin_key_from_env({"WEBHOOKS_ADMIN_KEY": key})


def test_a_given_hash_wins():
    digest = "ab" * 32
    assert admin_key_from_env({"WEBHOOKS_ADMIN_KEY_SHA256": digest, "WEBHOOKS_ADMIN_KEY": "bad"}).sha256 == digest
