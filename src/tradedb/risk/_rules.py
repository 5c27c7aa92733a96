"""Risk without I/O: limit validation, position valuation, the session and high-water state, and breaches.

PnL here is the account's total PnL: realized (net of commissions, as positions store it) plus unrealized (each
position's quantity times its mark minus its average cost), in the account's base currency. ``max_daily_loss`` is
measured from the PnL at the session start, ``max_drawdown`` from the highest PnL a check has seen; both are
amounts in the account currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tradedb.db.inputs import check_id, one_of, to_decimal
from tradedb.errors import ValidationError
from tradedb.schema.names import LIMIT_TYPES

#: Limits checked after the trade, on the account's PnL (account-wide only).
PNL_LIMITS = ("max_daily_loss", "max_drawdown")
_ZERO = Decimal(0)

Row = dict[str, Any]


@dataclass(frozen=True)
class LimitInput:
    """A validated limit to set."""

    account_id: str
    limit_type: str
    limit_value: Decimal
    security_id: int | None
    halt_on_breach: bool


def exposure(market_values: Iterable[Decimal | None]) -> dict[str, Decimal]:
    """Gross, net, long and short of positions' market values (None: unpriced, not counted)."""
    values = [v for v in market_values if v is not None]
    long = sum((v for v in values if v > 0), _ZERO)
    short = sum((v for v in values if v < 0), _ZERO)
    return {"gross": long - short, "net": long + short, "long": long, "short": short}


def limit_input(
    account_id: str, limit_type: Any, value: Any, security_id: Any = None, halt_on_breach: Any = False
) -> LimitInput:
    """Validate a limit; raise ValidationError naming the problem."""
    kind = one_of(limit_type, "limit_type", LIMIT_TYPES)
    amount = to_decimal(value, "limit_value", positive=True)
    security = None if security_id is None else check_id(security_id, "security_id")
    if kind in PNL_LIMITS and security is not None:
        raise ValidationError(f"{kind} is account-wide: it applies to the account's PnL, not to one security")
    if not isinstance(halt_on_breach, bool):
        raise ValidationError(f"halt_on_breach must be true or false, got {halt_on_breach!r}")
    return LimitInput(account_id, kind, amount, security, halt_on_breach)


def check_person(value: Any, name: str = "by") -> str:
    """Return who did something (a non-empty name), or raise ValidationError."""
    if not isinstance(value, str) or not value.strip() or len(value) > 128:
        raise ValidationError(f"{name} must name who did it (1 to 128 characters), got {value!r}")
    return value.strip()


def amount_text(value: Decimal) -> str:
    """An amount as plain digits without trailing zeros (``150``, not ``150.0000000000`` or ``1.5E+2``)."""
    return format(value.normalize(), "f") if value else "0"


def check_marks(marks: Mapping[Any, Any] | None) -> dict[int, Decimal]:
    """Validate caller-supplied marks {security_id: price}."""
    if marks is None:
        return {}
    if not isinstance(marks, Mapping):
        raise ValidationError(f"marks must map security ids to prices, got {type(marks).__name__}")
    return {
        check_id(k, "marks security_id"): to_decimal(v, f"mark of security {k}", positive=True)
        for k, v in marks.items()
    }


@dataclass(frozen=True)
class PositionValue:
    """A position marked to market, in the account currency (``mark`` None: no price, so no unrealized PnL)."""

    security_id: int
    quantity: Decimal
    avg_price: Decimal | None
    realized_pnl: Decimal
    mark: Decimal | None
    marked_at: datetime | None
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    #: Why the position has no value, when it has none.
    unpriced: str | None = None


def value_position(row: Mapping[str, Any], base_currency: str, mark: Decimal | None) -> PositionValue:
    """Mark one stored position (its ``quantity``, ``avg_price``, ``realized_pnl``, ``currency``) at ``mark``."""
    quantity: Decimal = row["quantity"]
    avg: Decimal | None = row["avg_price"]
    realized: Decimal = row["realized_pnl"]
    currency = row.get("currency")
    base = {
        "security_id": row["security_id"],
        "quantity": quantity,
        "avg_price": avg,
        "realized_pnl": realized,
        "marked_at": row.get("marked_at"),
    }
    if quantity == 0:
        return PositionValue(**base, mark=mark, market_value=_ZERO, unrealized_pnl=_ZERO)
    if currency is not None and currency != base_currency:
        reason = f"trades in {currency}, the account in {base_currency} (no conversion)"
        return PositionValue(**base, mark=mark, market_value=None, unrealized_pnl=None, unpriced=reason)
    if mark is None:
        return PositionValue(**base, mark=None, market_value=None, unrealized_pnl=None, unpriced="no price")
    assert avg is not None  # an open position has an average cost
    return PositionValue(**base, mark=mark, market_value=quantity * mark, unrealized_pnl=quantity * (mark - avg))


def total_pnl(positions: list[PositionValue]) -> Decimal:
    """Realized PnL of every position plus unrealized PnL of the priced ones."""
    return sum((p.realized_pnl + (p.unrealized_pnl or _ZERO) for p in positions), _ZERO)


@dataclass(frozen=True)
class RiskState:
    """What the PnL limits are measured from."""

    session_date: date
    session_start_pnl: Decimal
    high_water_pnl: Decimal
    pnl: Decimal

    @property
    def daily_loss(self) -> Decimal:
        """The loss since the session start (0 when the session is up)."""
        return max(self.session_start_pnl - self.pnl, _ZERO)

    @property
    def drawdown(self) -> Decimal:
        """The fall from the high-water mark."""
        return max(self.high_water_pnl - self.pnl, _ZERO)


def advance(previous: RiskState | None, pnl: Decimal, today: date) -> RiskState:
    """The state after a check that found ``pnl`` on ``today``.

    A new session starts from the PnL of the last check before it (the best known value at the boundary); with no
    state yet, from the PnL found now (limits are measured from when they first apply).
    """
    if previous is None:
        return RiskState(today, pnl, pnl, pnl)
    start = previous.session_start_pnl if previous.session_date == today else previous.pnl
    return RiskState(today, start, max(previous.high_water_pnl, pnl), pnl)


@dataclass(frozen=True)
class Breach:
    """A PnL limit the account is beyond."""

    limit_id: int
    limit_type: str
    limit_value: Decimal
    measured: Decimal
    halts: bool

    @property
    def severity(self) -> str:
        return "critical" if self.halts else "high"

    def message(self, account_id: str, currency: str) -> str:
        what = "loss since the session start" if self.limit_type == "max_daily_loss" else "drawdown from the high"
        return (
            f"{self.limit_type} of account {account_id} is {amount_text(self.limit_value)} {currency}; the {what} "
            f"is {amount_text(self.measured)} {currency}" + (": trading halted" if self.halts else "")
        )


def breaches(limits: list[Row], state: RiskState) -> list[Breach]:
    """The active PnL limits ``state`` is beyond (a value equal to the limit is within it)."""
    found = []
    for limit in limits:
        if limit["limit_type"] not in PNL_LIMITS or not limit["is_active"]:
            continue
        measured = state.daily_loss if limit["limit_type"] == "max_daily_loss" else state.drawdown
        if measured > limit["limit_value"]:
            found.append(
                Breach(limit["limit_id"], limit["limit_type"], limit["limit_value"], measured, limit["halt_on_breach"])
            )
    return found


@dataclass(frozen=True)
class RiskCheck:
    """What a post-trade (or mark-to-market) check of one account found and did."""

    account_id: str
    currency: str
    checked_at: datetime
    state: RiskState
    positions: list[PositionValue]
    #: Breaches found now that had no open risk event yet (each got one).
    breaches: list[Breach] = field(default_factory=list)
    halted: bool = False
    halt_reason: str | None = None

    @property
    def pnl(self) -> Decimal:
        return self.state.pnl

    @property
    def unpriced(self) -> list[int]:
        """Open positions without a value (no price, or another currency): their unrealized PnL is not counted."""
        return [p.security_id for p in self.positions if p.unpriced is not None]

    @property
    def exposure(self) -> dict[str, Decimal]:
        """Gross, net, long and short market value of the priced positions."""
        return exposure(p.market_value for p in self.positions)
