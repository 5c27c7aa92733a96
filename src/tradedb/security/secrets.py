"""Secrets encrypted in the application (AES-256-GCM); the database never sees a key or a clear-text secret.

Keys come from ``TRADEDB_ENCRYPTION_KEYS``: ``id:base64key[,id:base64key...]``, newest first. New values are
encrypted with the newest key; each stored value carries the id of its key, so older keys keep decrypting
until ``rotate`` re-encrypts everything with the newest. The associated data binds a ciphertext to its place
(table and row), so a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tradedb.db.connections import Connections
from tradedb.errors import ConfigError, NotFoundError, SecretError, ValidationError
from tradedb.settings import Settings

NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class Keyring:
    """The configured keys, newest first."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """Parse TRADEDB_ENCRYPTION_KEYS; raise ConfigError (never echoing key material) when malformed."""
        if settings.encryption_keys is None or not settings.encryption_keys.get_secret_value().strip():
            raise ConfigError(
                "TRADEDB_ENCRYPTION_KEYS is not set: generate a key with `tradedb secrets generate-key` and set "
                "TRADEDB_ENCRYPTION_KEYS=<id>:<key> (newest first, comma-separated)"
            )
        keys = []
        for position, item in enumerate(settings.encryption_keys.get_secret_value().split(","), start=1):
            kid, _, encoded = item.strip().partition(":")
            if not _KEY_ID.match(kid) or not encoded:
                raise ConfigError(f"TRADEDB_ENCRYPTION_KEYS entry {position} is not <id>:<base64 key>")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError(f"TRADEDB_ENCRYPTION_KEYS key {kid!r} is not valid base64") from None
            if len(key) != 32:
                raise ConfigError(f"TRADEDB_ENCRYPTION_KEYS key {kid!r} must be 32 bytes (AES-256), got {len(key)}")
            keys.append((kid, key))
        ids = [kid for kid, _ in keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("TRADEDB_ENCRYPTION_KEYS names a key id twice")
        return cls(tuple(keys))

    @property
    def newest(self) -> str:
        """Return the id new values are encrypted with."""
        return self.keys[0][0]

    def mac_key(self, purpose: str, kid: str | None = None) -> tuple[str, bytes]:
        """Return (key id, a key for HMACs of ``purpose``) derived from key ``kid`` (default the newest), so the
        encryption key itself never signs anything; an unknown ``kid`` raises SecretError."""
        kid = kid or self.newest
        key = dict(self.keys).get(kid)
        if key is None:
            raise SecretError(f"key {kid!r} is not in TRADEDB_ENCRYPTION_KEYS")
        return kid, hmac.new(key, f"tradedb:{purpose}".encode(), hashlib.sha256).digest()

    def encrypt(self, plaintext: str, context: str) -> tuple[str, bytes]:
        """Encrypt with the newest key; return (key id, nonce + ciphertext)."""
        kid, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        return kid, nonce + AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, kid: str, blob: bytes, context: str) -> str:
        """Decrypt a stored value; raise SecretError when the key is missing or wrong, never return garbage."""
        key = dict(self.keys).get(kid)
        if key is None:
            raise SecretError(
                f"the secret for {context} was encrypted with key {kid!r}, which TRADEDB_ENCRYPTION_KEYS does not "
                f"hold (it has {', '.join(k for k, _ in self.keys)})"
            )
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise SecretError(
                f"the secret for {context} does not decrypt with key {kid!r}: wrong key material, or the stored "
                f"value was altered"
            ) from None


def generate_key() -> str:
    """Return a new random AES-256 key, base64-encoded."""
    return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()


def _config_context(key: str) -> str:
    return f"shared.system_config:{key}"


def notification_context(config_id: int) -> str:
    """The associated data a channel's secret is encrypted with (binds the ciphertext to its row)."""
    return f"notification.notification_configs:{config_id}"


def set_secret(db: Connections, key: str, value: str, *, description: str | None = None) -> str:
    """Store ``value`` encrypted under system_config ``key``; return the key id used."""
    if not key or len(key) > 128:
        raise ValidationError("a config key is 1 to 128 characters")
    if not isinstance(value, str) or not value:
        raise ValidationError("a secret value must be a non-empty string")
    kid, blob = Keyring.from_settings(db.settings).encrypt(value, _config_context(key))
    db.execute(
        "INSERT INTO shared.system_config (key, value, description, is_secret, value_encrypted, key_id)"
        " VALUES (%s, NULL, %s, true, %s, %s)"
        " ON CONFLICT (key) DO UPDATE SET value = NULL, is_secret = true, value_encrypted = EXCLUDED.value_encrypted,"
        " key_id = EXCLUDED.key_id, description = coalesce(EXCLUDED.description, system_config.description),"
        " updated_at = now()",
        (key, description, blob, kid),
    )
    return kid


def get_secret(db: Connections, key: str) -> str:
    """Return the clear value of a secret system_config entry."""
    row = db.fetch_one(
        "SELECT is_secret, value_encrypted, key_id FROM shared.system_config WHERE key = %s", (key,), readonly=False
    )
    if row is None or not row["is_secret"] or row["value_encrypted"] is None:
        raise NotFoundError(f"no secret named {key!r} in shared.system_config")
    return Keyring.from_settings(db.settings).decrypt(
        row["key_id"], bytes(row["value_encrypted"]), _config_context(key)
    )


def set_notification_secret(db: Connections, config_id: int, value: str) -> str:
    """Store a notification channel's credential encrypted; return the key id used."""
    if not value:
        raise ValidationError("a secret value must be a non-empty string")
    kid, blob = Keyring.from_settings(db.settings).encrypt(value, notification_context(config_id))
    changed = db.execute(
        "UPDATE notification.notification_configs SET secret_encrypted = %s, key_id = %s, updated_at = now()"
        " WHERE config_id = %s",
        (blob, kid, config_id),
    )
    if changed != 1:
        raise NotFoundError(f"no notification config {config_id}")
    return kid


def get_notification_secret(db: Connections, config_id: int) -> str:
    """Return a notification channel's clear credential."""
    row = db.fetch_one(
        "SELECT secret_encrypted, key_id FROM notification.notification_configs WHERE config_id = %s",
        (config_id,),
        readonly=False,
    )
    if row is None or row["secret_encrypted"] is None:
        raise NotFoundError(f"no secret for notification config {config_id}")
    return Keyring.from_settings(db.settings).decrypt(
        row["key_id"], bytes(row["secret_encrypted"]), notification_context(config_id)
    )


def rotate(db: Connections) -> int:
    """Re-encrypt every secret not under the newest key with the newest key; return how many changed.

    One transaction: every secret is decrypted first, so a missing old key fails the rotation before anything
    is written.
    """
    keyring = Keyring.from_settings(db.settings)
    changed = 0
    with db.transaction() as conn:
        configs = conn.execute(
            "SELECT key, value_encrypted, key_id FROM shared.system_config"
            " WHERE is_secret AND value_encrypted IS NOT NULL AND key_id <> %s FOR UPDATE",
            (keyring.newest,),
        ).fetchall()
        channels = conn.execute(
            "SELECT config_id, secret_encrypted, key_id FROM notification.notification_configs"
            " WHERE secret_encrypted IS NOT NULL AND key_id <> %s FOR UPDATE",
            (keyring.newest,),
        ).fetchall()
        for key, blob, kid in configs:
            context = _config_context(key)
            new_kid, new_blob = keyring.encrypt(keyring.decrypt(kid, bytes(blob), context), context)
            conn.execute(
                "UPDATE shared.system_config SET value_encrypted = %s, key_id = %s WHERE key = %s",
                (new_blob, new_kid, key),
            )
            changed += 1
        for config_id, blob, kid in channels:
            context = notification_context(config_id)
            new_kid, new_blob = keyring.encrypt(keyring.decrypt(kid, bytes(blob), context), context)
            conn.execute(
                "UPDATE notification.notification_configs SET secret_encrypted = %s, key_id = %s WHERE config_id = %s",
                (new_blob, new_kid, config_id),
            )
            changed += 1
    return changed


def list_secrets(db: Connections) -> list[dict[str, Any]]:
    """The stored secrets and the key each is encrypted with (never their values)."""
    return db.fetch_all(
        "SELECT 'system_config' AS kind, key AS name, key_id, updated_at FROM shared.system_config"
        " WHERE is_secret UNION ALL SELECT 'notification', name, key_id, updated_at"
        " FROM notification.notification_configs WHERE secret_encrypted IS NOT NULL ORDER BY 1, 2",
        readonly=False,
    )
