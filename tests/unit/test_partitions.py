"""Partition naming, bounds and SQL (no database)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tradedb.schema import metadata
from tradedb.schema.partitions import (
    MONTH,
    create_default_partition_sql,
    create_partition_sql,
    floor_time,
    next_start,
    partition_name,
    partitions_around,
)

NOW = datetime(2026, 12, 31, 23, 47, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("interval", "floor", "after", "name"),
    [
        (
            timedelta(hours=1),
            datetime(2026, 12, 31, 23, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            "quotes_p20261231_2300",
        ),
        (
            timedelta(minutes=15),
            datetime(2026, 12, 31, 23, 45, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            "quotes_p20261231_2345",
        ),
        (
            timedelta(minutes=1),
            datetime(2026, 12, 31, 23, 47, tzinfo=UTC),
            datetime(2026, 12, 31, 23, 48, tzinfo=UTC),
            "quotes_p20261231_2347",
        ),
        (
            timedelta(days=1),
            datetime(2026, 12, 31, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
            "quotes_p20261231",
        ),
        (MONTH, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), "quotes_p202612"),
    ],
)
def test_bounds_and_names(interval: timedelta | str, floor: datetime, after: datetime, name: str) -> None:
    start = floor_time(NOW, interval)
    assert start == floor
    assert next_start(start, interval) == after
    assert partition_name("quotes", start, interval) == name


def test_floor_converts_to_utc() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 7, 1, 20, 30, tzinfo=ZoneInfo("America/New_York"))  # 00:30 UTC next day
    assert floor_time(local, timedelta(days=1)) == datetime(2026, 7, 2, tzinfo=UTC)


def test_partitions_around_are_contiguous() -> None:
    quotes = metadata.tables["data_ingestion.quotes"]
    specs = partitions_around(quotes, NOW, timedelta(minutes=15), ahead=3)
    assert len(specs) == 4
    assert all(a.end == b.start for a, b in itertools.pairwise(specs))
    assert specs[0].start <= NOW < specs[0].end


def test_sql_quotes_identifiers() -> None:
    quotes = metadata.tables["data_ingestion.quotes"]
    spec = partitions_around(quotes, NOW, timedelta(hours=1))[0]
    text = create_partition_sql(spec)
    assert text.startswith('CREATE TABLE IF NOT EXISTS "data_ingestion"."quotes_p20261231_2300" PARTITION OF ')
    assert "FROM ('2026-12-31T23:00:00+00:00') TO ('2027-01-01T00:00:00+00:00')" in text
    assert create_default_partition_sql(quotes).endswith('"data_ingestion"."quotes" DEFAULT')
