"""The symbol service: ``db.securities`` of the async Database.

The security master (active listings, add, update, delist, data status per day and source, statistics), its
symbology (identifiers per scheme with validity ranges, lookups as of a date, renames), index membership over
time (survivorship-free universes), and the loaders of listing, index and MIC files. Every write is one
transaction and validates its whole input first: a bad row raises a typed error naming it, and nothing is written.
"""

# source-only: the one source of this I/O; tools/async_to_sync.py generates the sync twin.

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import AsyncConnection, sql
from psycopg.rows import TupleRow, dict_row

from tradedb.db.inputs import check_day
from tradedb.errors import AmbiguousSymbol, NotFoundError, UnknownExchange, ValidationError
from tradedb.reference import _sql as q
from tradedb.reference import listings as files
from tradedb.reference import symbology as sym
from tradedb.reference.loads_async import AsyncLoads
from tradedb.schema.data_ingestion import SYMBOL_STATUSES
from tradedb.schema.shared import ASSET_TYPES

if TYPE_CHECKING:
    from tradedb.db.connections_async import AsyncConnections

#: Fields ``update`` may change.
UPDATABLE = ("name", "asset_type", "currency", "sector", "industry", "market_cap", "isin", "figi", "cik", "listed_on")


class AsyncSecurities:
    """The security master and its symbology (``db.securities``)."""

    def __init__(self, db: AsyncConnections, loads: AsyncLoads) -> None:
        self._db = db
        self._loads = loads

    # --- the security master ----------------------------------------------------------------------------

    async def get(self, symbol: str, *, exchange: str | None = None) -> dict[str, Any]:
        """Return the listing with this symbol (a trading one before delisted ones); NotFoundError when none."""
        sym.check_value(symbol, "symbol")
        rows = await self._db.fetch_all(q.GET, {"symbol": symbol, "exchange": _mic(exchange)})
        if not rows:
            raise NotFoundError(f"unknown symbol {symbol!r}" + (f" on {exchange}" if exchange else ""))
        live = [r for r in rows if r["status"] != "delisted"]
        if len(live) > 1:
            venues = ", ".join(str(r["exchange_mic"]) for r in live)
            raise AmbiguousSymbol(f"symbol {symbol!r} is listed on several venues ({venues}): pass exchange=")
        return live[0] if live else rows[0]

    async def active(
        self, *, exchange: str | None = None, asset_type: str | None = None, as_of: date | str | None = None
    ) -> list[dict[str, Any]]:
        """Listings that trade (today, or on ``as_of`` by their listing and delisting dates), by symbol."""
        if asset_type is not None and asset_type not in ASSET_TYPES:
            raise ValidationError(f"asset_type must be one of {', '.join(ASSET_TYPES)}, got {asset_type!r}")
        params = {"exchange": _mic(exchange), "asset_type": asset_type, "day": check_day(as_of, "as_of")}
        return await self._db.fetch_all(q.ACTIVE, params)

    async def add(
        self,
        symbol: str,
        *,
        exchange: str | None,
        asset_type: str = "equity",
        currency: str = "USD",
        name: str | None = None,
        sector: str | None = None,
        industry: str | None = None,
        isin: str | None = None,
        cik: str | None = None,
        listed_on: date | str | None = None,
        identifiers: Iterable[Mapping[str, Any]] = (),
        source: str | None = None,
    ) -> int:
        """Add a listing with its ticker (held from ``listed_on``) and further identifiers; return its id.

        ``exchange`` must be a MIC the database knows (``load_exchanges`` loads the ISO 10383 list; the US venues
        and the main European and Asian ones are known without it); a symbol a trading listing of the venue holds
        raises DuplicateError.
        """
        sym.check_symbol(symbol)
        if asset_type not in ASSET_TYPES:
            raise ValidationError(f"asset_type must be one of {', '.join(ASSET_TYPES)}, got {asset_type!r}")
        if isin is not None:
            sym.check_isin(isin)
        day = check_day(listed_on, "listed_on")
        extra = [sym.check_assignment({**r, "security_id": 0}, i) for i, r in enumerate(identifiers)]
        params = {
            "symbol": symbol,
            "exchange": _mic(exchange),
            "asset_type": asset_type,
            "currency": currency,
            "name": name,
            "sector": sector,
            "industry": industry,
            "isin": isin,
            "cik": cik,
            "listed_on": day,
        }
        async with self._db.transaction() as conn:
            if exchange is not None:
                await ensure_known_venues(conn, [exchange])
            security_id = await _scalar(conn, q.ADD, params)
            ticker = {"scheme": "ticker", "value": symbol, "scope": exchange or "", "valid_from": day}
            rows = [{**ticker, "security_id": security_id, "source": source}]
            rows += [{**r, "security_id": security_id, "source": r.get("source", source)} for r in extra]
            await _insert_identifiers(conn, rows)
        return security_id

    async def update(self, symbol: str, *, exchange: str | None = None, **fields: Any) -> dict[str, Any]:
        """Change fields of a listing (name, asset_type, currency, sector, industry, market_cap, isin, figi, cik,
        listed_on); return the row as stored."""
        unknown = sorted(set(fields) - set(UPDATABLE))
        if unknown or not fields:
            raise ValidationError(f"update takes {', '.join(UPDATABLE)}; got {', '.join(unknown) or 'nothing'}")
        if "asset_type" in fields and fields["asset_type"] not in ASSET_TYPES:
            raise ValidationError(f"asset_type must be one of {', '.join(ASSET_TYPES)}")
        if fields.get("isin") is not None:
            sym.check_isin(fields["isin"])
        current = await self.get(symbol, exchange=exchange)
        statement = sql.SQL(q.UPDATE).format(
            assignments=sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(name), sql.Placeholder(name)) for name in fields
            )
        )
        await self._db.execute(statement, {**fields, "security_id": current["security_id"]})
        return await self._by_id(current["security_id"])

    async def delist(
        self,
        symbol: str,
        *,
        on: date | str,
        reason: str | None = None,
        last_price: Decimal | float | None = None,
        exchange: str | None = None,
    ) -> bool:
        """Mark a listing delisted on ``on`` (recorded in ``delisted_symbols``); its tickers end that day.

        Idempotent: a listing already delisted is left as it is and False comes back.
        """
        day = check_day(on, "on")
        if day is None:
            raise ValidationError("delist needs the date: on=")
        current = await self.get(symbol, exchange=exchange)
        if current["status"] == "delisted":
            return False
        if current["listed_on"] is not None and day < current["listed_on"]:
            raise ValidationError(f"{symbol}: delisting date {day} is before its listing date {current['listed_on']}")
        if last_price is not None and Decimal(str(last_price)) <= 0:
            raise ValidationError(f"{symbol}: last_price must be positive, got {last_price}")
        params = {"ids": [current["security_id"]], "on": day, "reason": reason, "last_price": last_price}
        await self._db.execute(q.DELIST, params)
        return True

    async def delisted(self, *, since: date | str | None = None, exchange: str | None = None) -> list[dict[str, Any]]:
        """Delisted listings, newest first, with date, last price and reason."""
        return await self._db.fetch_all(q.DELISTED, {"since": check_day(since, "since"), "exchange": _mic(exchange)})

    async def stats(self) -> list[dict[str, Any]]:
        """Listings per venue and asset type: all, active, delisted, suspended."""
        return await self._db.fetch_all(q.STATS)

    async def _by_id(self, security_id: int) -> dict[str, Any]:
        row = await self._db.fetch_one(q.BY_ID, (security_id,), readonly=False)
        if row is None:
            raise NotFoundError(f"no security {security_id}")
        return row

    # --- data status --------------------------------------------------------------------------------------

    async def record_data_status(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Upsert load outcomes: symbol or security_id, date, source, status (success, failed, no_data), error.

        A repeated attempt for the same security, date and source counts up ``attempts``.
        """
        checked = []
        for i, row in enumerate(rows):
            status = row.get("status")
            if status not in SYMBOL_STATUSES:
                raise ValidationError(f"status {i}: status must be one of {', '.join(SYMBOL_STATUSES)}")
            day = check_day(row.get("date"), f"status {i}: date")
            if day is None:
                raise ValidationError(f"status {i}: needs a date")
            sym.check_source(row.get("source"), f"status {i}: source")
            checked.append({**row, "date": day})
        if not checked:
            return 0
        ids = await self.ids_of(checked, "status")
        params = {
            "ids": ids,
            "days": [r["date"] for r in checked],
            "sources": [r["source"] for r in checked],
            "statuses": [r["status"] for r in checked],
            "errors": [r.get("error") for r in checked],
        }
        return await self._db.execute(q.UPSERT_STATUS, params)

    async def data_status(
        self,
        *,
        date: date | str | None = None,
        source: str | None = None,
        status: str | None = None,
        symbol: str | None = None,
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        """Recorded load outcomes, newest date first."""
        security_id = (await self.get(symbol))["security_id"] if symbol is not None else None
        params = {
            "day": check_day(date, "date"),
            "source": source,
            "status": status,
            "security_id": security_id,
            "limit": limit,
        }
        return await self._db.fetch_all(q.DATA_STATUS, params)

    async def needing_data(
        self, day: date | str, *, source: str, exchange: str | None = None, asset_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Listings trading on ``day`` that have no successful load from ``source`` for it."""
        checked = check_day(day, "day")
        params = {"day": checked, "source": source, "exchange": _mic(exchange), "asset_type": asset_type}
        return await self._db.fetch_all(q.NEEDING_DATA, params)

    # --- symbology ----------------------------------------------------------------------------------------

    async def add_identifiers(self, rows: Iterable[Mapping[str, Any]], *, source: str | None = None) -> int:
        """Assign identifiers: symbol (with exchange) or security_id, scheme, value, scope, valid_from, valid_to.

        An assignment that overlaps another of the same identifier (held by another security, or by the same one
        twice) raises IdentifierConflict naming both; nothing is written.
        """
        checked = [sym.check_assignment(r, i) for i, r in enumerate(rows)]
        if not checked:
            return 0
        ids = await self.ids_of(checked, "identifier")
        for row, security_id in zip(checked, ids, strict=True):
            row["security_id"] = security_id
            row.setdefault("source", source)
        async with self._db.transaction() as conn:
            await _insert_identifiers(conn, checked)
        return len(checked)

    async def identifiers(self, symbol: str, *, exchange: str | None = None) -> list[dict[str, Any]]:
        """Every identifier of a listing, by scheme, with its validity."""
        current = await self.get(symbol, exchange=exchange)
        return await self._db.fetch_all(q.IDENTIFIERS, ([current["security_id"]],))

    async def rename(self, symbol: str, new_symbol: str, *, on: date | str, exchange: str | None = None) -> None:
        """Change a listing's ticker from ``on``: the old one ends that day (its venue ticker and US national
        symbol), the new one holds from it in the same schemes. CQS and ACT spellings are not derived: add them
        with :meth:`add_identifiers`."""
        day = check_day(on, "on")
        sym.check_symbol(new_symbol)
        if day is None:
            raise ValidationError("rename needs the date: on=")
        current = await self.get(symbol, exchange=exchange)
        security_id = current["security_id"]
        async with self._db.transaction() as conn:
            had = await (await conn.execute(q.HAS_IDENTIFIERS, (security_id,))).fetchone()
            cursor = await conn.execute(q.CLOSE_TICKERS, {"security_id": security_id, "value": symbol, "on": day})
            closed = [(str(r[0]), str(r[1])) for r in await cursor.fetchall()]
            await conn.execute(q.RENAME, (new_symbol, security_id))
            key = {"security_id": security_id, "source": "rename"}
            scope = current["exchange_mic"] or ""
            rows = [
                {**key, "scheme": scheme, "scope": where, "value": new_symbol, "valid_from": day}
                for scheme, where in closed or [("ticker", scope)]
            ]
            if had is None:
                # A listing without identifiers (added by a market-data writer) keeps its old ticker, ended.
                rows.append({**key, "scheme": "ticker", "scope": scope, "value": symbol, "valid_to": day})
            await _insert_identifiers(conn, rows)

    async def lookup(
        self,
        symbol: str,
        *,
        as_of: date | str | None = None,
        scheme: str | Sequence[str] | None = None,
        exchange: str | None = None,
    ) -> dict[str, Any]:
        """Return the security ``symbol`` named on ``as_of`` (default today) in any scheme, or in ``scheme`` (one,
        or several: ``("nasdaq", "cqs", "act")`` are the US conventions).

        NotFoundError when none did; AmbiguousSymbol when two securities did (narrow with exchange= or scheme=).
        """
        found = await self.lookup_many([symbol], as_of=as_of, scheme=scheme, exchange=exchange)
        if symbol not in found:
            day = check_day(as_of, "as_of") or date.today()
            raise NotFoundError(f"no security went by {symbol!r} on {day}")
        return await self._by_id(found[symbol])

    async def lookup_many(
        self,
        symbols: Sequence[str],
        *,
        as_of: date | str | Sequence[date] | None = None,
        scheme: str | Sequence[str] | None = None,
        exchange: str | None = None,
    ) -> dict[str, int]:
        """Map symbols to security ids in one round trip (unknown ones are left out).

        ``as_of`` is one date for all, or one per symbol (then keys repeat per symbol; use :meth:`resolve`).
        """
        matches = await self.resolve(symbols, as_of=as_of, scheme=scheme, exchange=exchange)
        return {s: int(m["security_id"]) for s, m in zip(symbols, matches, strict=True) if m is not None}

    async def resolve(
        self,
        symbols: Sequence[str],
        *,
        as_of: date | str | Sequence[date] | None = None,
        scheme: str | Sequence[str] | None = None,
        exchange: str | None = None,
        labels: Sequence[str] | None = None,
    ) -> list[dict[str, Any] | None]:
        """Resolve each symbol (on its own date when ``as_of`` is a sequence) in one statement.

        Returns, per symbol, the match (security_id, symbol, exchange_mic, scheme) or None. ``labels`` name the
        rows in errors (default: the symbol).
        """
        names = [sym.check_value(s, "symbol") for s in symbols]
        schemes = (
            None if scheme is None else [sym.check_scheme(s) for s in ([scheme] if isinstance(scheme, str) else scheme)]
        )
        days: list[date] | None = None
        day = date.today()
        if isinstance(as_of, Sequence) and not isinstance(as_of, str):
            days = [check_day(d, "as_of") or day for d in as_of]
            if len(days) != len(names):
                raise ValidationError(f"as_of has {len(days)} dates for {len(names)} symbols")
        else:
            day = check_day(as_of, "as_of") or day
        if not names:
            return []
        params = sym.lookup_params(names, days, day=day, schemes=schemes, exchange=_mic(exchange))
        rows = await self._db.fetch_all(q.LOOKUP, params)
        return sym.resolved(rows, len(names), list(labels) if labels is not None else names)

    async def ids_of(self, rows: list[dict[str, Any]], what: str) -> list[int]:
        """The security id of each row: given, or its symbol's (with its exchange) today."""
        wanted = [i for i, r in enumerate(rows) if r.get("security_id") is None]
        ids = [r.get("security_id") for r in rows]
        for i, row in enumerate(rows):
            if row.get("security_id") is None and not isinstance(row.get("symbol"), str):
                raise ValidationError(f"{what} {i}: needs a symbol or a security_id")
        by_venue: dict[str | None, list[int]] = {}
        for i in wanted:
            by_venue.setdefault(rows[i].get("exchange"), []).append(i)
        for venue, positions in by_venue.items():
            symbols = [rows[i]["symbol"] for i in positions]
            labels = [f"{what} {i} ({rows[i]['symbol']})" for i in positions]
            matches = await self.resolve(symbols, exchange=venue, labels=labels)
            for i, match in zip(positions, matches, strict=True):
                if match is None:
                    raise NotFoundError(f"{what} {i}: unknown symbol {rows[i]['symbol']!r}")
                ids[i] = match["security_id"]
        return [int(i) for i in ids if i is not None]

    # --- index membership -----------------------------------------------------------------------------------

    async def universe(self, index: str, *, as_of: date | str | None = None) -> list[dict[str, Any]]:
        """The members of ``index`` on ``as_of`` (default today), delisted ones included: no survivorship bias."""
        day = check_day(as_of, "as_of") or date.today()
        return await self._db.fetch_all(q.UNIVERSE, {"index": _index(index), "day": day})

    async def indexes(self) -> list[dict[str, Any]]:
        """Every index with its current member count."""
        return await self._db.fetch_all(q.INDEXES)

    async def set_index_members(
        self,
        index: str,
        members: Iterable[str | Mapping[str, Any]],
        *,
        as_of: date | str,
        complete: bool = True,
        source: str | None = None,
    ) -> tuple[int, int]:
        """Record the members of ``index`` on ``as_of``: symbols, or dicts with symbol or security_id and
        ``member_from``. With ``complete``, members not named leave the index that day. Returns (added, ended)."""
        name = _index(index)
        day = check_day(as_of, "as_of")
        if day is None:
            raise ValidationError("set_index_members needs as_of=")
        rows: list[dict[str, Any]] = [{"symbol": m} if isinstance(m, str) else dict(m) for m in members]
        for i, row in enumerate(rows):
            row["member_from"] = check_day(row.get("member_from"), f"member {i}: member_from") or day
            if row["member_from"] > day:
                raise ValidationError(f"member {i}: member_from {row['member_from']} is after as_of {day}")
        ids = await self.ids_of(rows, "member")
        async with self._db.transaction() as conn:
            froms = [r["member_from"] for r in rows]
            return await _members(conn, index=name, ids=ids, froms=froms, day=day, complete=complete, source=source)

    # --- files ----------------------------------------------------------------------------------------------

    async def load_exchanges(self, path: str | Path) -> tuple[int, int]:
        """Load the ISO 10383 MIC list (CSV); return (added, updated)."""
        parsed = files.read(path)
        if parsed.format != "mic":
            raise ValidationError(f"{path}: not an ISO 10383 MIC list (found a {parsed.format} file)")
        columns = ("mic", "operating_mic", "name", "acronym", "country", "city", "status")
        params = {c: [v[c] for v in parsed.venues] for c in columns}
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.UPSERT_EXCHANGES, params)
            flags = [r[0] for r in await cursor.fetchall()]
        return sum(flags), len(flags) - sum(flags)

    async def load_listings(
        self,
        paths: str | Path | Sequence[str | Path],
        *,
        as_of: date | str,
        source: str | None = None,
        complete: bool = False,
    ) -> files.ListingReport:
        """Load listing and index files as one snapshot of ``as_of``, in one transaction.

        A listing is found by its venue ticker or, in the US, its NASDAQ-convention symbol, held on ``as_of``. A
        found listing whose name says it is another company (see ``listings.same_company``) had its ticker
        reused: the earlier holder is delisted that day and a new listing takes the ticker from it. New
        listings and identifiers are added; identifiers hold from the day an earlier holder's ended (else since
        always). With ``complete``, the files list every listing of their venues and every member of their
        indices: the listings of those venues they do not name are delisted on ``as_of``, and the members they
        do not name leave the index. Market capitalisations go to ``key_statistics``. A ``load_runs`` row
        records the load.
        """
        day = check_day(as_of, "as_of")
        if day is None:
            raise ValidationError("load_listings needs the date the files describe: as_of=")
        names = [paths] if isinstance(paths, str | Path) else list(paths)
        if not names:
            raise ValidationError("load_listings needs at least one file")
        parsed = [files.read(p) for p in names]
        label = sym.check_source(source or parsed[0].format)
        report = files.ListingReport(files=[str(p) for p in names])
        started = time.perf_counter()
        async with self._loads.run(source=label, table="securities", target=", ".join(report.files)) as run:
            async with self._db.transaction() as conn:
                await _load(conn, parsed=parsed, day=day, source=label, complete=complete, report=report)
            run.rows_loaded = report.listings
        report.seconds = time.perf_counter() - started
        return report


# --- the listing load, one transaction ---------------------------------------------------------------------


async def _load(
    conn: AsyncConnection[TupleRow],
    *,
    parsed: list[files.ListingFile],
    day: date,
    source: str,
    complete: bool,
    report: files.ListingReport,
) -> None:
    listings: list[files.Listing] = []
    keys: list[tuple[str, str, str]] = []
    first: dict[tuple[str, str, str], int] = {}
    memberships: list[tuple[str, int, date | None]] = []
    # Only a venue's own listing file says a ticker changed hands; an index file names today's holder.
    authority: list[bool] = []
    for file in parsed:
        if file.format == "mic":
            raise ValidationError("an ISO MIC list is loaded with load_exchanges, not load_listings")
        report.rows += len(file.listings) + file.skipped
        report.skipped += file.skipped
        report.findings += file.findings
        local: dict[int, int] = {}
        for n, listing in enumerate(file.listings):
            key = listing.key
            if key not in first:
                first[key] = len(listings)
                listings.append(listing)
                keys.append(key)
                authority.append(file.lists_venues)
            else:
                _merge(listings[first[key]], listing)
            local[n] = first[key]
        for m in file.memberships:
            if m.member_from is not None and m.member_from > day:
                line = file.listings[m.listing].line
                raise ValidationError(
                    f"line {line}: {file.listings[m.listing].symbol} joined {m.index_name} on {m.member_from}, after "
                    f"the day the file describes ({day}): pass a later as_of"
                )
            memberships.append((m.index_name, local[m.listing], m.member_from))
    report.listings = len(listings)
    mics = sorted({x.exchange_mic for x in listings if x.exchange_mic})
    await ensure_known_venues(conn, mics)

    found = await _fetch(
        conn,
        q.MATCH_LISTINGS,
        {
            "schemes": [k[0] for k in keys],
            "values": [k[1] for k in keys],
            "scopes": [k[2] for k in keys],
            "mics": [x.exchange_mic for x in listings],
            "day": day,
        },
    )
    ids: list[int | None] = [None] * len(listings)
    reused: list[int] = []
    for row in found:
        n = int(row["n"]) - 1
        listing = listings[n]
        if not authority[n] or files.same_company(row["name"], listing.name):
            ids[n] = int(row["security_id"])
            if authority[n] and listing.exchange_mic and row["exchange_mic"] not in (None, listing.exchange_mic):
                report.moved += 1
        else:
            reused.append(int(row["security_id"]))
    if reused:
        reason = f"ticker reused by another company ({source}, {day})"
        await conn.execute(q.DELIST, {"ids": reused, "on": day, "reason": reason, "last_price": None})
        report.reused = len(reused)

    known = [(n, i) for n, i in enumerate(ids) if i is not None]
    if known:
        params = _listing_params([listings[n] for n, _ in known], [i for _, i in known])
        # Only a venue's own file moves a listing to another venue.
        params["mics"] = [m if authority[n] else None for m, (n, _) in zip(params["mics"], known, strict=True)]
        await conn.execute(q.UPDATE_LISTINGS, params)
        report.updated = len(known)
    new = [n for n, i in enumerate(ids) if i is None]
    if new:
        params = _listing_params([listings[n] for n in new], None)
        cursor = await conn.execute(q.INSERT_LISTINGS, params)
        created = {(r[1], r[2]): int(r[0]) for r in await cursor.fetchall()}
        for n in new:
            ids[n] = created[(listings[n].symbol, listings[n].exchange_mic)]
        report.added = len(new)
    resolved = [int(i) for i in ids if i is not None]

    rows = [(resolved[n], s, v, sc) for n, x in enumerate(listings) for s, v, sc in x.identifiers]
    cursor = await conn.execute(
        q.ADD_LISTING_IDENTIFIERS,
        {
            "ids": [r[0] for r in rows],
            "schemes": [r[1] for r in rows],
            "values": [r[2] for r in rows],
            "scopes": [r[3] for r in rows],
            "day": day,
            "source": source,
        },
    )
    report.identifiers = cursor.rowcount

    caps = [(resolved[n], x.market_cap) for n, x in enumerate(listings) if x.market_cap is not None]
    if caps:
        await conn.execute(
            q.INSERT_STATISTICS,
            {
                "ids": [c[0] for c in caps],
                "days": [day] * len(caps),
                "sources": [source] * len(caps),
                "market_caps": [c[1] for c in caps],
            },
        )

    listed_venues = sorted({x.exchange_mic for f in parsed if f.lists_venues for x in f.listings if x.exchange_mic})
    if complete and listed_venues:
        absent = await _fetch(conn, q.ABSENT, {"mics": listed_venues, "seen": resolved})
        if absent:
            reason = f"absent from the {source} listings of {day}"
            params = {"ids": [r["security_id"] for r in absent], "on": day, "reason": reason, "last_price": None}
            await conn.execute(q.DELIST, params)
            report.delisted = len(absent)

    by_index: dict[str, list[tuple[int, date]]] = {}
    for index, n, member_from in memberships:
        by_index.setdefault(index, []).append((resolved[n], member_from or day))
    for index, members in by_index.items():
        unique = dict(members)  # one membership per security
        added, ended = await _members(
            conn, index=index, ids=list(unique), froms=list(unique.values()), day=day, complete=complete, source=source
        )
        report.members_added += added
        report.members_ended += ended
    # A snapshot can change most of these tables at once: fresh statistics keep lookups on their indexes (on
    # stale ones a single lookup scanned every identifier). A role that does not own them skips it, warned.
    await conn.execute(q.ANALYZE)


def _merge(into: files.Listing, other: files.Listing) -> None:
    """A listing named twice (two indices, two files): keep the first, add what the other knows."""
    for ident in other.identifiers:
        if ident not in into.identifiers:
            into.identifiers.append(ident)
    for name in ("name", "isin", "market_cap", "sector", "industry", "cik", "exchange_mic"):
        if getattr(into, name) is None:
            setattr(into, name, getattr(other, name))


def _listing_params(listings: list[files.Listing], ids: list[int] | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "names": [x.name for x in listings],
        "mics": [x.exchange_mic for x in listings],
        "asset_types": [x.asset_type for x in listings],
        "sectors": [x.sector for x in listings],
        "industries": [x.industry for x in listings],
        "ciks": [x.cik for x in listings],
        "isins": [x.isin for x in listings],
        "market_caps": [x.market_cap for x in listings],
    }
    if ids is not None:
        params["ids"] = ids
    else:
        params["symbols"] = [x.symbol for x in listings]
        params["currencies"] = [x.currency for x in listings]
    return params


async def _members(
    conn: AsyncConnection[TupleRow],
    *,
    index: str,
    ids: list[int],
    froms: list[date],
    day: date,
    complete: bool,
    source: str | None,
) -> tuple[int, int]:
    ended = 0
    if complete:
        cursor = await conn.execute(q.END_MEMBERS, {"index": index, "ids": ids, "on": day})
        ended = cursor.rowcount
    cursor = await conn.execute(q.ADD_MEMBERS, {"index": index, "ids": ids, "froms": froms, "source": source})
    return cursor.rowcount, ended


async def ensure_known_venues(conn: AsyncConnection[TupleRow], mics: list[str]) -> None:
    """Add the venues the file formats name (real ISO MICs) when the ISO list has not been loaded."""
    names = {m: m for m in (*files.GOOGLE_VENUES.values(), *files.YAHOO_VENUES.values())} | files.US_VENUE_NAMES
    known = [m for m in mics if m in names]
    await conn.execute(q.ADD_VENUES, {"mics": known, "names": [names[m] for m in known]})
    await _check_venues(conn, mics)


async def _check_venues(conn: AsyncConnection[TupleRow], mics: list[str]) -> None:
    for mic in mics:
        sym.check_mic(mic)
    cursor = await conn.execute(q.KNOWN_EXCHANGES, (list(mics),))
    present = {r[0] for r in await cursor.fetchall()}
    missing = sorted(set(mics) - present)
    if missing:
        raise UnknownExchange(
            f"unknown exchange(s) {', '.join(missing)}: not in shared.exchanges (load the ISO 10383 MIC list with "
            "`tradedb securities load-exchanges FILE`)"
        )


async def _insert_identifiers(conn: AsyncConnection[TupleRow], rows: list[dict[str, Any]]) -> None:
    values = [r["value"] for r in rows]
    cursor = await conn.execute(q.HELD, (values,))
    existing = [sym.Assignment(*r) for r in await cursor.fetchall()]
    wanted = [
        sym.Assignment(
            r["security_id"], r["scheme"], r["value"], r.get("scope") or "", r.get("valid_from"), r.get("valid_to")
        )
        for r in rows
    ]
    sym.refuse_overlaps(wanted, existing)
    columns = ("security_id", "scheme", "value", "scope", "valid_from", "valid_to", "source")
    await conn.execute(
        q.INSERT_IDENTIFIERS, {c: [r.get(c) or ("" if c == "scope" else None) for r in rows] for c in columns}
    )


async def _scalar(conn: AsyncConnection[TupleRow], statement: str, params: Any) -> int:
    cursor = await conn.execute(statement, params)
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def _fetch(conn: AsyncConnection[TupleRow], statement: str, params: Any) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(statement, params)
        return await cursor.fetchall()


def _mic(exchange: str | None) -> str | None:
    return None if exchange is None else sym.check_mic(exchange)


def _index(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or name != name.strip():
        raise ValidationError(f"index name must be 1-64 characters without surrounding spaces, got {name!r}")
    return name


__all__ = ["AsyncSecurities"]
