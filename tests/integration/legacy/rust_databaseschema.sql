-- A database as the Rust databaseschema crate's Diesel migrations left it: Diesel's version table and tick
-- tables in the service schemas (hypertables there; plain tables here, as no TimescaleDB runs in the tests).
-- Equivalent DDL, not the crate's migrations themselves.
CREATE TABLE public.__diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL DEFAULT now());
INSERT INTO public.__diesel_schema_migrations (version) VALUES ('20240101000000'), ('20240215000000');
CREATE SCHEMA data_ingestion;
CREATE TABLE data_ingestion.market_trades (
    time timestamptz NOT NULL, symbol text NOT NULL, price double precision NOT NULL, size double precision NOT NULL
);
INSERT INTO data_ingestion.market_trades VALUES ('2024-05-08 13:30:00+00', 'AAPL', 182.01, 100);
