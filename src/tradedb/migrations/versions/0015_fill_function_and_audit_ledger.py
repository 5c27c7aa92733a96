"""fills in one call, and an audit ledger: per-row hashes without a lock, sealed into a chain of blocks

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 15:30:00

``execution.record_fill`` records a fill (the fill, the order's fill state, the order event, the position and the
outbox's events) in one server-side call, so a fill is one round trip. Its arithmetic is the Python reference
model's, exactly: averages are rounded half-even to 10 places from the exact quotient (``execution.fill_average``).

The audit trail no longer chains rows under a database-wide advisory lock. Each audited row gets the hash of its
own content and its transaction id (``txid``); ``shared.audit_seal()`` later groups committed transactions into
``shared.audit_transactions`` (a hash per transaction over its rows) and chains them into
``shared.audit_blocks`` (a hash per block over the previous block and its transactions). The rows written before
this revision keep their old chain; block 0 commits to it (its length and last hash), so a digest of any later
block covers them too.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "shared"
TS = sa.DateTime(timezone=True)
#: Frozen: the tables audited when this revision was written, with their key columns.
AUDITED_TABLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("execution", "accounts", ("account_id",)),
    ("execution", "orders", ("order_id",)),
    ("execution", "fills", ("fill_id",)),
    ("execution", "positions", ("account_id", "security_id")),
    ("risk_management", "risk_limits", ("limit_id",)),
    ("strategy_engine", "strategies", ("strategy_id",)),
    ("strategy_engine", "strategy_parameters", ("parameter_id",)),
    ("strategy_engine", "strategy_instances", ("instance_id",)),
    ("shared", "system_config", ("key",)),
    ("notification", "notification_configs", ("config_id",)),
)
#: Frozen: the advisory lock key that serializes sealers (never writers) and the one 0002 used for the old chain.
SEAL_LOCK_KEY = 0x7472616465646203
OLD_CHAIN_LOCK_KEY = 0x7472616465646202

# Half-even rounding of a / b to 10 places, from the exact quotient (no intermediate rounding): numeric's own
# division rounds to a scale of its choosing first, which could round a half that is not one.
FILL_AVERAGE = r"""
CREATE FUNCTION execution.fill_average(old_qty numeric, old_avg numeric, add_qty numeric, add_price numeric)
RETURNS numeric LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    total numeric := old_qty + add_qty;
    scaled numeric := (old_qty * coalesce(old_avg, 0) + add_qty * add_price) * 10000000000;
    quotient numeric := div(scaled, total);
    twice_rest numeric := 2 * (scaled - quotient * total);
BEGIN
    IF twice_rest > total OR (twice_rest = total AND mod(quotient, 2) = 1) THEN
        quotient := quotient + 1;
    END IF;
    RETURN quotient * 0.0000000001;
END
$fn$
"""

# Mirrors tradedb.execution._rules (apply_fill, status_after_fill, fill_events); the integration tests hold the two
# to the same results. SQLSTATEs TD001-TD004 are translated to NotFoundError, Overfill, InvalidTransition and
# OrderConflict. Security invoker: row-level security and privileges apply as to the caller's own statements.
RECORD_FILL = r"""
CREATE FUNCTION execution.record_fill(
    p_execution_id text, p_order_id bigint, p_quantity numeric, p_price numeric, p_commission numeric,
    p_executed_at timestamptz, p_liquidity text, p_settlement_date date, p_emit boolean
) RETURNS TABLE (duplicate boolean, fill execution.fills, ord execution.orders, pos execution.positions)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    o execution.orders;
    f execution.fills;
    p execution.positions;
    from_status text;
    signed numeric;
    held numeric;
    closing numeric;
    n_qty numeric;
    n_avg numeric;
    n_pnl numeric;
    n_fees numeric;
    filled numeric;
    pos_version integer;
BEGIN
    -- Lock order: the order, then the position (as every writer of fills does), so fills never deadlock.
    SELECT * INTO o FROM execution.orders WHERE order_id = p_order_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown order %', p_order_id USING ERRCODE = 'TD001';
    END IF;
    SELECT * INTO f FROM execution.fills WHERE execution_id = p_execution_id;
    IF FOUND THEN
        IF (f.order_id, f.quantity, f.price, f.commission)
                IS DISTINCT FROM (p_order_id, p_quantity, p_price, p_commission) THEN
            RAISE EXCEPTION 'execution_id % was already recorded with different content (fill %)',
                quote_literal(p_execution_id), f.fill_id USING ERRCODE = 'TD004';
        END IF;
        SELECT * INTO p FROM execution.positions WHERE account_id = o.account_id AND security_id = o.security_id;
        RETURN QUERY SELECT true, f, o, p;
        RETURN;
    END IF;
    IF o.status NOT IN ('pending', 'submitted', 'partially_filled') THEN
        RAISE EXCEPTION 'order % is %: it cannot be filled', p_order_id, o.status USING ERRCODE = 'TD003';
    END IF;
    IF p_quantity > o.quantity - o.filled_quantity THEN
        RAISE EXCEPTION 'fill of % exceeds the remaining % of order %', p_quantity, o.quantity - o.filled_quantity,
            p_order_id USING ERRCODE = 'TD002';
    END IF;
    SELECT * INTO p FROM execution.positions
    WHERE account_id = o.account_id AND security_id = o.security_id FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO execution.positions (account_id, security_id) VALUES (o.account_id, o.security_id)
        ON CONFLICT (account_id, security_id) DO NOTHING;
        SELECT * INTO p FROM execution.positions
        WHERE account_id = o.account_id AND security_id = o.security_id FOR UPDATE;
    END IF;

    -- The position after the fill: average cost on increases, realized PnL on reductions and flips.
    signed := CASE WHEN o.side = 'buy' THEN p_quantity ELSE -p_quantity END;
    held := p.quantity;
    n_pnl := p.realized_pnl - p_commission;
    n_fees := p.total_commission + p_commission;
    IF held = 0 OR (held > 0) = (signed > 0) THEN
        n_qty := held + signed;
        n_avg := execution.fill_average(abs(held), p.avg_price, p_quantity, p_price);
    ELSE
        closing := least(p_quantity, abs(held));
        n_pnl := n_pnl + closing * (p_price - coalesce(p.avg_price, 0)) * sign(held);
        IF p_quantity = closing THEN
            n_qty := held + signed;
            n_avg := CASE WHEN n_qty <> 0 THEN p.avg_price END;
        ELSE  -- through zero: the rest opens a new position at the fill price
            n_qty := CASE WHEN signed > 0 THEN p_quantity - closing ELSE closing - p_quantity END;
            n_avg := execution.fill_average(0, NULL, 1, p_price);
        END IF;
    END IF;

    INSERT INTO execution.fills (execution_id, order_id, account_id, security_id, side, quantity, price, commission,
        liquidity, executed_at, settlement_date)
    VALUES (p_execution_id, p_order_id, o.account_id, o.security_id, o.side, p_quantity, p_price, p_commission,
        p_liquidity, coalesce(p_executed_at, now()), p_settlement_date)
    RETURNING * INTO f;
    from_status := o.status;
    filled := o.filled_quantity + p_quantity;
    UPDATE execution.orders SET filled_quantity = filled,
        avg_fill_price = execution.fill_average(o.filled_quantity, o.avg_fill_price, p_quantity, p_price),
        status = CASE WHEN filled = o.quantity THEN 'filled' ELSE 'partially_filled' END,
        version = version + 1, updated_at = now()
    WHERE order_id = p_order_id RETURNING * INTO o;
    INSERT INTO execution.order_events (order_id, account_id, from_status, to_status, reason, payload)
    VALUES (p_order_id, o.account_id, from_status, o.status, 'fill', jsonb_build_object(
        'execution_id', p_execution_id, 'quantity', p_quantity::text, 'price', p_price::text));
    pos_version := p.version;
    UPDATE execution.positions SET quantity = n_qty, avg_price = n_avg, realized_pnl = n_pnl,
        total_commission = n_fees,
        opened_at = CASE WHEN n_qty = 0 THEN NULL WHEN quantity = 0 OR sign(quantity) <> sign(n_qty) THEN f.executed_at
                         ELSE opened_at END,
        updated_at = now(), version = version + 1
    WHERE account_id = o.account_id AND security_id = o.security_id RETURNING * INTO p;
    IF p_emit THEN
        PERFORM shared.emit_versioned(jsonb_build_array(
            jsonb_build_array('order', o.order_id::text, 'fill.recorded', jsonb_build_object(
                'order_id', o.order_id, 'client_order_id', o.client_order_id, 'account_id', o.account_id,
                'security_id', o.security_id, 'side', o.side, 'order_type', o.order_type,
                'quantity', o.quantity::text, 'limit_price', o.limit_price::text, 'stop_price', o.stop_price::text,
                'status', o.status, 'filled_quantity', o.filled_quantity::text,
                'avg_fill_price', o.avg_fill_price::text, 'version', o.version, 'from_status', from_status,
                'fill_id', f.fill_id, 'execution_id', f.execution_id, 'fill_quantity', f.quantity::text,
                'fill_price', f.price::text, 'commission', f.commission::text,
                'executed_at', to_char(f.executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
                o.version),
            jsonb_build_array('position', o.account_id || ':' || o.security_id, 'position.changed', jsonb_build_object(
                'account_id', o.account_id, 'security_id', o.security_id, 'quantity', n_qty::text,
                'avg_price', n_avg::text, 'realized_pnl', n_pnl::text, 'total_commission', n_fees::text,
                'fill_id', f.fill_id),
                pos_version)));
    END IF;
    RETURN QUERY SELECT false, f, o, p;
END
$fn$
"""

# Both audit triggers append through this statement (its FROM clause theirs), with these declarations, so their
# rows hash alike. The hash covers the old payload's fields plus the writing transaction's id; verification spells
# the same expression in its own query rather than trusting a function stored in the audited database.
ACTOR = r"""
    txid bigint := pg_current_xact_id()::text::bigint;
    db_user text := CASE WHEN current_setting('role') = 'none' THEN session_user::text
                         ELSE current_setting('role') END;
    app_user text := nullif(current_setting('tradedb.app_user', true), '');"""
APPEND_LEDGER_ROWS = r"""
    INSERT INTO shared.audit_log (audit_id, changed_at, table_schema, table_name, operation, row_key, old_values,
                                  new_values, db_user, app_user, txid, row_hash)
    SELECT audit_id, changed_at, table_schema, table_name, operation, row_key, old_values, new_values, db_user,
           app_user, txid, sha256(convert_to(concat_ws(E'\x1f', txid::text, audit_id::text,
               to_char(changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), table_schema, table_name,
               operation, coalesce(row_key::text, ''), coalesce(old_values::text, ''),
               coalesce(new_values::text, ''), db_user, coalesce(app_user, '')), 'UTF8'))"""

# No lock: each row is hashed on its own; ordering and chaining are the sealer's work, after commit.
AUDIT_ROW = r"""
CREATE OR REPLACE FUNCTION shared.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    old_j jsonb;
    new_j jsonb;
    key_j jsonb := '{}';
    col text;
    audit_id bigint := nextval('shared.audit_log_audit_id_seq');
    changed_at timestamptz := clock_timestamp();
    table_schema text := TG_TABLE_SCHEMA;
    table_name text := TG_TABLE_NAME;
    operation text := TG_OP;ACTOR
BEGIN
    IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); END IF;
    FOREACH col IN ARRAY TG_ARGV LOOP
        key_j := key_j || jsonb_build_object(col, coalesce(new_j, old_j) -> col);
    END LOOP;APPEND
    FROM (SELECT key_j AS row_key, old_j AS old_values, new_j AS new_values) v;
    RETURN NULL;
END
$fn$
""".replace("ACTOR", ACTOR).replace("APPEND", APPEND_LEDGER_ROWS)

# One sealer at a time (writers never take this lock). Every transaction whose id is below the horizon was finished
# when the horizon was read, so it was visible to this seal (and sealed) if it committed: the next seal need only
# look at transactions from the horizon on.
AUDIT_SEAL = r"""
CREATE FUNCTION shared.audit_seal()
RETURNS TABLE (block_id bigint, transactions integer, row_count bigint, block_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    last_block shared.audit_blocks;
    next_horizon bigint;
    new_id bigint;
    n_tx integer;
    n_rows bigint;
    digest bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(SEAL_LOCK_KEY);
    next_horizon := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
    SELECT * INTO last_block FROM shared.audit_blocks b ORDER BY b.block_id DESC LIMIT 1;
    new_id := last_block.block_id + 1;
    INSERT INTO shared.audit_transactions (txid, block_id, ordinal, row_count, tx_hash)
    SELECT l.txid, new_id, row_number() OVER (ORDER BY l.txid), count(*),
           sha256(convert_to(l.txid::text, 'UTF8') || string_agg(l.row_hash, '\x'::bytea ORDER BY l.audit_id))
    FROM shared.audit_log l
    WHERE l.txid >= last_block.horizon
      AND NOT EXISTS (SELECT 1 FROM shared.audit_transactions t WHERE t.txid = l.txid)
    GROUP BY l.txid;
    GET DIAGNOSTICS n_tx = ROW_COUNT;
    IF n_tx = 0 THEN
        RETURN;
    END IF;
    SELECT sum(t.row_count),
           sha256(last_block.block_hash || convert_to(format('%s|%s|%s|', new_id, n_tx, sum(t.row_count)), 'UTF8')
                  || string_agg(t.tx_hash, '\x'::bytea ORDER BY t.ordinal))
    INTO n_rows, digest FROM shared.audit_transactions t WHERE t.block_id = new_id;
    INSERT INTO shared.audit_blocks (block_id, prev_hash, block_hash, transactions, row_count, horizon, sealed_at)
    VALUES (new_id, last_block.block_hash, digest, n_tx, n_rows, next_horizon, now());
    RETURN QUERY SELECT new_id, n_tx, n_rows, digest;
END
$fn$
""".replace("SEAL_LOCK_KEY", str(SEAL_LOCK_KEY))

# Inserts are audited per statement: a COPY of 10,000 fills is hashed in one INSERT ... SELECT over its transition
# table instead of 10,000 trigger calls. Updates and deletes stay per row (their old and new rows pair up there).
AUDIT_INSERTS = r"""
CREATE FUNCTION shared.audit_inserts() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE ACTOR
BEGIN APPEND
    FROM (SELECT nextval('shared.audit_log_audit_id_seq') AS audit_id, clock_timestamp() AS changed_at,
                 TG_TABLE_SCHEMA::text AS table_schema, TG_TABLE_NAME::text AS table_name, 'INSERT'::text AS operation,
                 (SELECT jsonb_object_agg(k, r.j -> k) FROM unnest(TG_ARGV) k) AS row_key,
                 NULL::jsonb AS old_values, r.j AS new_values
          FROM (SELECT to_jsonb(n) AS j FROM new_rows n) r) v;
    RETURN NULL;
END
$fn$
""".replace("ACTOR", ACTOR).replace("APPEND", APPEND_LEDGER_ROWS)

# Block 0 commits to the chain written before this revision (rows without a txid): its length and last hash.
GENESIS = r"""
INSERT INTO shared.audit_blocks (block_id, prev_hash, block_hash, transactions, row_count, horizon, sealed_at)
SELECT 0, NULL,
       sha256(convert_to(format('tradedb legacy chain|%s|', count(*)), 'UTF8')
              || coalesce((SELECT l.row_hash FROM shared.audit_log l ORDER BY l.audit_id DESC LIMIT 1), '\x')),
       0, count(*), pg_snapshot_xmin(pg_current_snapshot())::text::bigint, now()
FROM shared.audit_log
"""

# The ledger's tables may be read by whoever may read the audit log, nobody else: the schema's default privileges
# gave every reader of shared SELECT on them (role names depend on the deployment's prefix, so they are found here).
SAME_READERS_AS_THE_LOG = r"""
DO $do$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT c.relname, a.grantee::regrole AS grantee
        FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
        WHERE c.oid IN ('shared.audit_blocks'::regclass, 'shared.audit_transactions'::regclass)
          AND a.grantee NOT IN (0, c.relowner)
          AND NOT has_table_privilege(a.grantee, 'shared.audit_log', 'SELECT')
    LOOP
        EXECUTE format('REVOKE ALL ON shared.%I FROM %s', r.relname, r.grantee);
    END LOOP;
END
$do$
"""

# The frozen 0002 trigger function, restored by downgrade.
OLD_AUDIT_ROW = r"""
CREATE OR REPLACE FUNCTION shared.audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    old_j jsonb;
    new_j jsonb;
    key_j jsonb := '{}';
    col text;
    prev bytea;
    rec_id bigint;
    at timestamptz := clock_timestamp();
    actor text := CASE WHEN current_setting('role') = 'none' THEN session_user::text
                       ELSE current_setting('role') END;
    app text := nullif(current_setting('tradedb.app_user', true), '');
BEGIN
    IF TG_OP <> 'INSERT' THEN old_j := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_j := to_jsonb(NEW); END IF;
    FOREACH col IN ARRAY TG_ARGV LOOP
        key_j := key_j || jsonb_build_object(col, coalesce(new_j, old_j) -> col);
    END LOOP;
    PERFORM pg_advisory_xact_lock(LOCK_KEY);
    SELECT l.row_hash INTO prev FROM shared.audit_log l ORDER BY l.audit_id DESC LIMIT 1;
    rec_id := nextval('shared.audit_log_audit_id_seq');
    INSERT INTO shared.audit_log (audit_id, changed_at, table_schema, table_name, operation, row_key, old_values,
                                  new_values, db_user, app_user, prev_hash, row_hash)
    VALUES (rec_id, at, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, key_j, old_j, new_j, actor, app, prev,
            sha256(coalesce(prev, '\x'::bytea) || convert_to(shared.audit_payload(
                rec_id, at, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, key_j, old_j, new_j, actor, app), 'UTF8')));
    RETURN NULL;
END
$fn$
""".replace("LOCK_KEY", str(OLD_CHAIN_LOCK_KEY))


# Downgrade puts the rows written under the ledger back on the old chain (in audit_id order, after the rows that
# were on it), so the chain verifies again under 0014.
RECHAIN = r"""
DO $do$
DECLARE
    r record;
    prev bytea;
    next_hash bytea;
BEGIN
    SELECT l.row_hash INTO prev FROM shared.audit_log l WHERE l.txid IS NULL ORDER BY l.audit_id DESC LIMIT 1;
    FOR r IN SELECT * FROM shared.audit_log l WHERE l.txid IS NOT NULL ORDER BY l.audit_id LOOP
        next_hash := sha256(coalesce(prev, '\x'::bytea) || convert_to(shared.audit_payload(r.audit_id, r.changed_at,
            r.table_schema, r.table_name, r.operation, r.row_key, r.old_values, r.new_values, r.db_user, r.app_user),
            'UTF8'));
        UPDATE shared.audit_log SET prev_hash = prev, row_hash = next_hash
        WHERE audit_id = r.audit_id AND changed_at = r.changed_at;
        prev := next_hash;
    END LOOP;
END
$do$
"""


def upgrade() -> None:
    op.execute(FILL_AVERAGE)
    op.execute(RECORD_FILL)
    op.add_column(
        "audit_log",
        sa.Column("txid", sa.BigInteger(), nullable=True, comment="Writing transaction; NULL before the ledger"),
        schema=S,
    )
    op.alter_column(
        "audit_log",
        "prev_hash",
        existing_type=sa.LargeBinary(),
        comment="row_hash of the previous entry (the chain before the ledger)",
        schema=S,
    )
    op.alter_column(
        "audit_log",
        "row_hash",
        existing_type=sa.LargeBinary(),
        comment="sha256 over this row and its txid (before the ledger: over prev_hash and this row)",
        schema=S,
    )
    op.create_index(op.f("ix_audit_log_txid"), "audit_log", ["txid"], schema=S)
    op.create_table(
        "audit_blocks",
        sa.Column("block_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=True, comment="block_hash of the block before"),
        sa.Column(
            "block_hash",
            sa.LargeBinary(),
            nullable=False,
            comment="sha256 over prev_hash, the counts and the transactions' hashes in order",
        ),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column(
            "horizon",
            sa.BigInteger(),
            nullable=False,
            comment="Oldest transaction still running at sealing: the next seal looks from here",
        ),
        sa.Column("sealed_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("block_id", name=op.f("pk_audit_blocks")),
        schema=S,
        comment="The audit ledger's blocks: committed transactions chained in the order they were sealed.",
    )
    op.create_table(
        "audit_transactions",
        sa.Column("txid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("block_id", sa.BigInteger(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False, comment="Position in the block"),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False, comment="sha256 over txid and the row hashes"),
        sa.ForeignKeyConstraint(
            ["block_id"],
            ["shared.audit_blocks.block_id"],
            name=op.f("fk_audit_transactions_block_id_audit_blocks"),
            deferrable=True,
            initially="DEFERRED",  # the sealer writes a block's transactions before the block (its hash needs them)
        ),
        sa.PrimaryKeyConstraint("txid", name=op.f("pk_audit_transactions")),
        schema=S,
        comment="Sealed transactions of the audit ledger, with a hash over their audit rows.",
    )
    op.create_index(
        op.f("ix_audit_transactions_block_id_ordinal"), "audit_transactions", ["block_id", "ordinal"], schema=S
    )
    for table in ("audit_blocks", "audit_transactions"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON shared.{table}"
            " FOR EACH ROW EXECUTE FUNCTION shared.audit_log_guard()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON shared.{table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION shared.audit_log_guard()"
        )
    op.execute(SAME_READERS_AS_THE_LOG)
    # Writers still on the old trigger finish their chain first: this waits for them.
    op.execute(f"SELECT pg_advisory_xact_lock({OLD_CHAIN_LOCK_KEY})")
    op.execute(AUDIT_ROW)
    op.execute(AUDIT_INSERTS)
    op.execute("REVOKE ALL ON FUNCTION shared.audit_inserts() FROM PUBLIC")
    for schema, table, keys in AUDITED_TABLES:
        args = ", ".join(f"'{k}'" for k in keys)
        op.execute(f'DROP TRIGGER audit ON "{schema}"."{table}"')
        op.execute(
            f'CREATE TRIGGER audit AFTER UPDATE OR DELETE ON "{schema}"."{table}"'
            f" FOR EACH ROW EXECUTE FUNCTION shared.audit_row({args})"
        )
        op.execute(
            f'CREATE TRIGGER audit_inserts AFTER INSERT ON "{schema}"."{table}" REFERENCING NEW TABLE AS new_rows'
            f" FOR EACH STATEMENT EXECUTE FUNCTION shared.audit_inserts({args})"
        )
    op.execute(AUDIT_SEAL)
    op.execute("REVOKE ALL ON FUNCTION shared.audit_seal() FROM PUBLIC")
    op.execute(GENESIS)


def downgrade() -> None:
    for schema, table, keys in AUDITED_TABLES:
        args = ", ".join(f"'{k}'" for k in keys)
        op.execute(f'DROP TRIGGER audit_inserts ON "{schema}"."{table}"')
        op.execute(f'DROP TRIGGER audit ON "{schema}"."{table}"')
        op.execute(
            f'CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON "{schema}"."{table}"'
            f" FOR EACH ROW EXECUTE FUNCTION shared.audit_row({args})"
        )
    op.execute("DROP FUNCTION shared.audit_inserts()")
    op.execute(OLD_AUDIT_ROW)
    op.execute(RECHAIN)
    op.execute("DROP FUNCTION IF EXISTS shared.audit_seal()")
    op.drop_index(op.f("ix_audit_transactions_block_id_ordinal"), table_name="audit_transactions", schema=S)
    op.drop_table("audit_transactions", schema=S)
    op.drop_table("audit_blocks", schema=S)
    op.drop_index(op.f("ix_audit_log_txid"), table_name="audit_log", schema=S)
    op.alter_column(
        "audit_log", "row_hash", existing_type=sa.LargeBinary(), comment="sha256 over prev_hash and this row", schema=S
    )
    op.alter_column(
        "audit_log", "prev_hash", existing_type=sa.LargeBinary(), comment="row_hash of the previous entry", schema=S
    )
    op.drop_column("audit_log", "txid", schema=S)
    op.execute(
        "DROP FUNCTION IF EXISTS execution.record_fill(text, bigint, numeric, numeric, numeric, timestamptz, text, "
        "date, boolean)"
    )
    op.execute("DROP FUNCTION IF EXISTS execution.fill_average(numeric, numeric, numeric, numeric)")
