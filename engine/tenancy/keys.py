"""API keys: ``rwk_<id>_<secret>``; the store keeps the id and the SHA-256 of the secret, never the secret.

The secret is 32 random bytes, so a fast hash is enough (no password stretching needed: it cannot be
guessed from a dictionary); comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["ParsedKey", "hash_secret", "new_key", "parse_key", "secret_matches"]

PREFIX = "rwk"


class ParsedKey:
    """A key split into its public id and its secret."""

    __slots__ = ("key_id", "secret")

    def __init__(self, key_id: str, secret: str) -> None:
        self.key_id = key_id
        self.secret = secret


def new_key() -> tuple[str, str, str]:
    """A fresh key: ``(plaintext, key id, secret hash)``."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}_{key_id}_{secret}", key_id, hash_secret(secret)


def parse_key(text: str) -> ParsedKey | None:
    """Split a presented key (None when it is not one of ours)."""
    parts = text.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or len(parts[1]) != 16 or not parts[2]:
        return None
    return ParsedKey(parts[1], parts[2])


def hash_secret(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Constant-time check of a presented secret against its stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)
