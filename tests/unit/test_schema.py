"""The models follow SCHEMA.md and DESIGN.md conventions (no database)."""

from __future__ import annotations

import sqlalchemy as sa

from tradedb.schema import SERVICE_SCHEMAS, metadata, partitioned_tables

#: The canonical table list of SCHEMA.md.
SCHEMA_MD_TABLES = {
    "shared": {"exchanges", "securities", "system_config", "audit_log", "event_outbox"},
    "data_ingestion": {
        "quotes",
        "market_trades",
        "bars",
        "order_book_events",
        "corporate_actions",
        "company_info",
        "key_statistics",
        "institutional_holders",
        "delisted_symbols",
        "symbol_data_status",
        "load_runs",
        "data_quality_logs",
        "archives",
    },
    "execution": {"accounts", "orders", "order_events", "fills", "positions"},
    "strategy_engine": {
        "strategies",
        "strategy_parameters",
        "strategy_instances",
        "strategy_signals",
        "strategy_performance",
        "backtest_runs",
        "backtest_equity_curve",
        "backtest_trades",
        "optimization_runs",
        "optimization_iterations",
    },
    "risk_management": {"risk_limits", "risk_events", "account_risk"},
    "analytics": {"portfolio_summary", "performance_metrics"},
    "notification": {"notification_configs", "notification_logs", "notification_deliveries"},
    "logging": {"system_logs", "performance_logs"},
}
TIME_SERIES = {
    "shared.audit_log",
    "shared.event_outbox",
    "data_ingestion.quotes",
    "data_ingestion.market_trades",
    "data_ingestion.bars",
    "data_ingestion.order_book_events",
    "data_ingestion.data_quality_logs",
    "execution.order_events",
    "strategy_engine.strategy_signals",
    "risk_management.risk_events",
    "notification.notification_logs",
    "logging.system_logs",
    "logging.performance_logs",
}


#: Tables tradedb adds beyond SCHEMA.md, each for a feature SCHEMA.md does not cover.
TRADEDB_TABLES = {
    # market data coverage maintained on write (issue 4); order book snapshots (issue 13); last quotes (issue 18)
    "data_ingestion": {"coverage", "order_book_snapshots", "last_quotes"},
    "strategy_engine": {"backtest_positions", "backtest_orders"},
    # events (issue 14): per-aggregate sequence counters, PostgreSQL streams and their groups, inbox, dead letters
    "shared": {
        "event_sequences",
        "event_streams",
        "event_consumer_groups",
        "event_inbox",
        "event_dead_letters",
        # reference data (issue 16): symbology with validity ranges, index membership over time
        "security_identifiers",
        "index_members",
        # the audit ledger (issue 18): sealed transactions and the chain of blocks
        "audit_transactions",
        "audit_blocks",
        # scale-out (issue 21): maintenance mode's flag, which a Citus cluster copies to every node
        "maintenance_state",
    },
}


def test_every_schema_md_table_exists_and_nothing_in_public() -> None:
    declared: dict[str, set[str]] = {}
    for table in metadata.tables.values():
        assert table.schema in SERVICE_SCHEMAS, f"{table.name} is outside the service schemas"
        declared.setdefault(str(table.schema), set()).add(table.name)
    expected = {schema: tables | TRADEDB_TABLES.get(schema, set()) for schema, tables in SCHEMA_MD_TABLES.items()}
    assert declared == expected


def test_time_series_tables_are_partitioned_and_keys_include_time() -> None:
    assert {t.fullname for t in partitioned_tables()} == TIME_SERIES
    for table in partitioned_tables():
        column = table.info["partition_column"]
        assert table.dialect_options["postgresql"]["partition_by"] == f"RANGE ({column})"
        for constraint in table.constraints:
            if isinstance(constraint, sa.PrimaryKeyConstraint | sa.UniqueConstraint) and constraint.columns:
                assert column in constraint.columns, f"{constraint.name} lacks {column}"


def test_every_constraint_and_index_has_a_stable_name() -> None:
    names: list[str] = []
    for table in metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, sa.PrimaryKeyConstraint) and not constraint.columns:
                continue
            assert constraint.name, f"unnamed constraint on {table.fullname}"
            names.append(f"{table.schema}.{constraint.name}")
        for index in table.indexes:
            assert index.name
            names.append(f"{table.schema}.{index.name}")
    assert len(names) == len(set(names)), "constraint/index names collide"
    assert all(len(n.split(".", 1)[1]) <= 63 for n in names)


def test_every_table_has_a_comment_and_times_have_zones() -> None:
    for table in metadata.tables.values():
        assert table.comment, f"{table.fullname} has no comment"
        for column in table.columns:
            if isinstance(column.type, sa.DateTime):
                assert column.type.timezone, f"{table.fullname}.{column.name} is not timestamptz"


def test_symbols_are_32_characters_everywhere() -> None:
    for table in metadata.tables.values():
        if "symbol" in table.columns:
            assert table.columns["symbol"].type.length == 32  # type: ignore[attr-defined]


def test_execution_amounts_are_exact_numeric() -> None:
    for name in ("orders", "fills", "positions"):
        table = metadata.tables[f"execution.{name}"]
        for column in ("quantity", "price", "avg_price", "limit_price", "commission", "realized_pnl"):
            if column in table.columns:
                assert isinstance(table.columns[column].type, sa.Numeric)
                assert not isinstance(table.columns[column].type, sa.Float)


def test_enumerations_are_text_checks_not_enums() -> None:
    for table in metadata.tables.values():
        for column in table.columns:
            assert not isinstance(column.type, sa.Enum), f"{table.fullname}.{column.name} is a PG enum"
