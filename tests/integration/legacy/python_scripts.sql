-- A database as the Python trading system's scripts (01_...sql to 20_...sql, run by setup_databases.py) left it,
-- in the shape ../shared/SCHEMA.md describes: the same service schemas and table names, enums in public,
-- symbols of varchar(7)/(10)/(20) in different tables, timestamps without time zones (New York time), no
-- versioning table. Equivalent DDL, not the scripts themselves (they are not shipped with tradedb).
CREATE TYPE public.order_side AS ENUM ('buy', 'sell');
CREATE TYPE public.order_status AS ENUM ('pending', 'filled', 'cancelled');
CREATE SCHEMA data_ingestion;
CREATE SCHEMA execution;
CREATE SCHEMA shared;
CREATE TABLE shared.securities (
    id serial PRIMARY KEY, symbol varchar(10) NOT NULL UNIQUE, name text, exchange varchar(10)
);
CREATE TABLE data_ingestion.quotes (
    id bigserial PRIMARY KEY, symbol varchar(7) NOT NULL, ts timestamp NOT NULL,
    bid numeric, ask numeric, bid_size numeric, ask_size numeric
);
CREATE TABLE execution.orders (
    order_id serial PRIMARY KEY, symbol varchar(20), side public.order_side, status public.order_status,
    quantity numeric, price numeric, created_at timestamp DEFAULT now()
);
CREATE TABLE execution.positions (
    symbol varchar(20) PRIMARY KEY, quantity numeric NOT NULL, avg_price numeric NOT NULL
);
INSERT INTO shared.securities (symbol, name, exchange) VALUES
    ('AAPL', 'Apple Inc.', 'NASDAQ'), ('MSFT', 'Microsoft Corporation', 'NASDAQ'), ('KO', 'Coca-Cola', 'NYSE');
INSERT INTO data_ingestion.quotes (symbol, ts, bid, ask, bid_size, ask_size)
SELECT s.symbol, '2024-05-08 09:30'::timestamp + g * interval '1 second', s.px + g / 100.0, s.px + 0.02 + g / 100.0,
       100, 200
FROM generate_series(0, 99) g, (VALUES ('AAPL', 182.0), ('MSFT', 411.0)) s(symbol, px);
INSERT INTO execution.orders (symbol, side, status, quantity, price) VALUES
    ('AAPL', 'buy', 'filled', 100, 182.5), ('MSFT', 'buy', 'filled', 20, 410.25), ('MSFT', 'sell', 'filled', 5, 412);
INSERT INTO execution.positions VALUES ('AAPL', 100, 182.5), ('MSFT', 15, 410.25);
