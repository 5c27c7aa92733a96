"""Strategies, their parameters and instances: ``db.strategies`` of the async Database.

A strategy is a name and version with typed parameter specifications; a version's definition is fixed once
registered (registering it again with the same definition returns it, with another raises StrategyConflict).
Instances bind validated parameters and move created -> running <-> paused -> stopped (or failed).
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tradedb.db.outbox_async import emit
from tradedb.db.outbox_rules import new_event
from tradedb.errors import InvalidTransition, NotFoundError, StrategyConflict, ValidationError
from tradedb.strategies import _sql as q
from tradedb.strategies import params as p
from tradedb.strategies.params import Param, Validation

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

#: Allowed moves of an instance's status.
TRANSITIONS = {
    "created": ("running", "stopped"),
    "running": ("paused", "stopped", "failed"),
    "paused": ("running", "stopped", "failed"),
    "stopped": (),
    "failed": (),
}


@dataclass(frozen=True)
class Strategy:
    """A registered strategy version and its parameter specifications (in display order)."""

    strategy_id: int
    name: str
    version: str
    description: str | None
    code_reference: str | None
    strategy_type: str | None
    is_active: bool
    params: tuple[Param, ...]

    def validate(self, values: Mapping[str, Any] | None) -> Validation:
        """Check ``values`` against this strategy's parameters (no I/O)."""
        return p.validate(self.params, values)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValidationError(f"{what} must be non-empty text of at most 200 characters, got {value!r}")
    return value.strip()


def escape_like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (``%`` and ``_`` match themselves)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class AsyncStrategies:
    """The strategies API of one Database (``db.strategies``)."""

    def __init__(self, db: AsyncConnections) -> None:
        self._db = db

    async def register(
        self,
        name: str,
        params: Sequence[Param] = (),
        *,
        version: str = "1",
        description: str | None = None,
        code_reference: str | None = None,
        strategy_type: str | None = None,
    ) -> Strategy:
        """Register ``name`` ``version`` with its parameter specs; idempotent for the same definition."""
        name = check_name(name, "name")
        version = check_name(str(version), "version")
        specs = p.ordered(params)
        row = {
            "name": name,
            "version": version,
            "strategy_type": strategy_type,
            "description": description,
            "code_reference": code_reference,
            "base_configuration": Jsonb({}),
        }
        async with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(q.INSERT_STRATEGY, row)
            created = await cursor.fetchone()
            if created is not None:
                for spec in specs:
                    fields = p.to_row(spec)
                    for key in ("default_value", "allowed_values"):
                        fields[key] = None if fields[key] is None else Jsonb(fields[key])
                    await cursor.execute(q.INSERT_PARAMETER, {**fields, "strategy_id": created["strategy_id"]})
        existing = await self.get(name, version=version)
        if created is None:
            same = (
                tuple(existing.params) == tuple(specs)
                and existing.description == description
                and existing.code_reference == code_reference
                and existing.strategy_type == strategy_type
            )
            if not same:
                raise StrategyConflict(
                    f"strategy {name} v{version} is already registered with a different definition; "
                    "register it as a new version"
                )
        return existing

    async def get(self, strategy: int | str, *, version: str | None = None) -> Strategy:
        """A strategy by id, or by name (the newest version unless ``version`` is given)."""
        async with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            if isinstance(strategy, int) and not isinstance(strategy, bool):
                await cursor.execute(q.STRATEGY_BY_ID, (strategy,))
            elif isinstance(strategy, str):
                await cursor.execute(q.STRATEGY_BY_NAME, (strategy, version, version))
            else:
                raise ValidationError(f"strategy must be an id or a name, got {type(strategy).__name__}")
            row = await cursor.fetchone()
            if row is None:
                which = f"{strategy}" + (f" v{version}" if version else "")
                raise NotFoundError(f"strategy {which} is not registered")
            await cursor.execute(q.PARAMETERS, (row["strategy_id"],))
            specs = tuple(p.from_row(r) for r in await cursor.fetchall())
        return Strategy(
            row["strategy_id"],
            row["name"],
            row["version"],
            row["description"],
            row["code_reference"],
            row["strategy_type"],
            row["is_active"],
            specs,
        )

    async def list(self, *, search: str | None = None, active: bool | None = None) -> list[dict[str, Any]]:
        """Strategies whose name or description contains ``search`` (literally: ``%`` and ``_`` are not
        wildcards), with their count of completed runs."""
        if search is not None and not isinstance(search, str):
            raise ValidationError(f"search must be text, got {type(search).__name__}")
        pattern = None if search is None else f"%{escape_like(search)}%"
        return await self._db.fetch_all(q.STRATEGIES, {"search": pattern, "active": active})

    async def set_active(self, strategy: int | str, active: bool, *, version: str | None = None) -> None:
        """Mark a strategy version active or retired (retired ones stay queryable)."""
        found = await self.get(strategy, version=version)
        await self._db.execute(q.SET_ACTIVE, (bool(active), found.strategy_id))

    async def validate(
        self, strategy: int | str, params: Mapping[str, Any] | None, *, version: str | None = None
    ) -> Validation:
        """Check ``params`` against the strategy's specs: per parameter valid, message, value, suggested."""
        return (await self.get(strategy, version=version)).validate(params)

    async def create_instance(
        self,
        strategy: int | str,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        version: str | None = None,
        account_id: str | None = None,
    ) -> dict[str, Any]:
        """Create an instance (status ``created``) from valid parameters only; ParameterError names every bad
        one. The stored parameters are the normalized values (defaults filled in)."""
        name = check_name(name, "instance name")
        found = await self.get(strategy, version=version)
        checked = found.validate(params)
        checked.raise_for_errors(f"{found.label}")
        values = Jsonb(p.json_values(found.params, checked.values()))
        async with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(q.INSERT_INSTANCE, (found.strategy_id, name, account_id, values))
            row = await cursor.fetchone()
            assert row is not None
            await self._emit(cursor, row, "strategy_instance.created", None)
        return row

    async def instance(self, instance_id: int) -> dict[str, Any]:
        row = await self._db.fetch_one(q.INSTANCE, (check_id(instance_id, "instance_id"),), readonly=False)
        if row is None:
            raise NotFoundError(f"strategy instance {instance_id} does not exist")
        return row

    async def instances(
        self, strategy: int | str | None = None, *, status: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        strategy_id = None if strategy is None else (await self.get(strategy)).strategy_id
        if status is not None and status not in TRANSITIONS:
            raise ValidationError(f"status must be one of {', '.join(TRANSITIONS)}, got {status!r}")
        return await self._db.fetch_all(q.INSTANCES, {"strategy_id": strategy_id, "status": status})

    async def set_status(self, instance_id: int, status: str) -> dict[str, Any]:
        """Move an instance to ``status`` (see TRANSITIONS); InvalidTransition for a move that is not allowed."""
        if status not in TRANSITIONS:
            raise ValidationError(f"status must be one of {', '.join(TRANSITIONS)}, got {status!r}")
        check_id(instance_id, "instance_id")
        async with self._db.transaction() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(q.INSTANCE_FOR_UPDATE, (instance_id,))
            row = await cursor.fetchone()
            if row is None:
                raise NotFoundError(f"strategy instance {instance_id} does not exist")
            if status not in TRANSITIONS[row["status"]]:
                allowed = ", ".join(TRANSITIONS[row["status"]]) or "nothing (it is final)"
                raise InvalidTransition(
                    f"strategy instance {instance_id} is {row['status']}: it can move to {allowed}, not {status}"
                )
            await cursor.execute(q.UPDATE_INSTANCE_STATUS, {"status": status, "instance_id": instance_id})
            updated = await cursor.fetchone()
            assert updated is not None
            await self._emit(cursor, updated, "strategy_instance.status_changed", row["status"])
        return updated

    async def _emit(self, cursor: Any, row: dict[str, Any], event_type: str, from_status: str | None) -> None:
        if self._db.settings.events_outbox:
            payload = {
                "instance_id": row["instance_id"],
                "strategy_id": row["strategy_id"],
                "name": row["name"],
                "account_id": row.get("account_id"),
                "status": row["status"],
                "from_status": from_status,
            }
            await emit(cursor, [new_event("strategy_instance", row["instance_id"], event_type, payload)])


def check_id(value: Any, what: str) -> int:
    """``value`` when it is a positive integer (an id); else a ValidationError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{what} must be a positive integer, got {value!r}")
    return value
