"""API keys: where they come from and how they are compared."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

GENERATED_KEY_FILE = "api_key"


def load_or_create_keys(configured: list[str], user_data_dir: Path) -> tuple[str, ...]:
    """Configured keys win; otherwise a random key is created once and kept in an owner-only file."""
    if configured:
        return tuple(configured)
    key_file = user_data_dir / GENERATED_KEY_FILE
    if key_file.is_file():
        key = key_file.read_text().strip()
        if key:
            logger.info(
                "auth.key_file path=%s (API_KEYS unset: send this file's content as X-API-Key)", key_file
            )
            return (key,)
    user_data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    os.chmod(key_file, 0o600)
    logger.info("auth.key_created path=%s (API_KEYS unset: send this file's content as X-API-Key)", key_file)
    return (key,)


def key_matches(candidate: str | None, accepted: tuple[str, ...]) -> bool:
    if not candidate:
        return False
    given = candidate.encode()
    # Compare against every key, without stopping early, so timing says nothing about which matched.
    matched = False
    for key in accepted:
        matched |= hmac.compare_digest(given, key.encode())
    return matched
