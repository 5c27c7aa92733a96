"""Platform settings: ``db.config`` of the sync Database, typed ``get``/``set`` over ``shared.system_config``.

Known keys are typed (``maintenance_mode`` a bool, ``default_risk_limit`` an amount or None, ``system_version``
read-only text); other keys hold any JSON and are created only on request, so a misspelt key is an error rather
than a new setting. Every change is audited (``system_config`` is an audited table; the Database's ``app_user`` is
recorded as who). Secrets are set with ``tradedb secrets set``, never here.
"""

# WARNING: generated from api_async.py by tools/async_to_sync.py; edit the async source and run
# `python tools/async_to_sync.py`. A unit test fails when this file is stale.

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tradedb.config import _rules as rules
from tradedb.config._sql import SET, SETTING, SETTINGS
from tradedb.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from tradedb.db.connections import Connections


class Config:
    """The platform settings of one Database (``db.config``)."""

    def __init__(self, db: Connections) -> None:
        self._db = db

    def get(self, key: str) -> Any:
        """Return a setting's value, typed for the keys tradedb knows; ``NotFoundError`` for an unknown key."""
        rules.check_key(key)
        row = self._db.fetch_one(SETTING, (key,), readonly=False)
        if row is None:
            raise NotFoundError(f"no setting {key!r} in shared.system_config")
        if row["is_secret"]:
            raise ValidationError(f"{key} is a secret: read it with tradedb.security.secrets, not as a setting")
        return rules.from_json(key, row["value"])

    def set(self, key: str, value: Any, *, create: bool = False, description: str | None = None) -> Any:
        """Set a setting; return its typed value. A value of the wrong type raises ``ValidationError`` (nothing is
        written); a key tradedb does not know must exist already, or be created with ``create=True``."""
        rules.check_key(key)
        known = rules.KNOWN.get(key)
        if known is not None and known.read_only:
            raise ValidationError(f"{key} is read-only")
        typed = rules.parse_value(key, value)
        with self._db.transaction() as conn:
            current = (conn.execute(SETTING, (key,))).fetchone()
            if current is not None and current[2]:
                raise ValidationError(f"{key} is a secret: set it with `tradedb secrets set {key}`")
            if current is None and known is None and not create:
                names = ", ".join(sorted(rules.KNOWN))
                raise NotFoundError(f"no setting {key!r} (tradedb knows {names}); pass create=True to add it")
            params = {
                "key": key,
                "value": rules.to_json(typed),
                "description": description or (known.description if known else None),
            }
            conn.execute(SET, params)
        return typed

    def all(self) -> list[dict[str, Any]]:
        """Return every setting (typed values; secrets without theirs), by key."""
        rows = self._db.fetch_all(SETTINGS, readonly=False)
        return [{**r, "value": None if r["is_secret"] else rules.from_json(r["key"], r["value"])} for r in rows]
