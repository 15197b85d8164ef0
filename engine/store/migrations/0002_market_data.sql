-- Market data: one row per series (exchange, symbol, timeframe); bars keyed by (series, ts).
-- Prices here are market data (float8, as the backtests read them); money at order, fill and
-- ledger boundaries is NUMERIC in the execution tables.
CREATE TABLE IF NOT EXISTS market_series (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    exchange   text NOT NULL,
    symbol     text NOT NULL,
    timeframe  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (exchange, symbol, timeframe)
);

CREATE TABLE IF NOT EXISTS bars (
    -- no FOREIGN KEY to market_series: its per-row trigger halves COPY throughput (measured by
    -- bench/data_bench.py); BarStore creates the series row first and deletes bars with their series.
    series_id integer NOT NULL,
    ts        bigint  NOT NULL,             -- bar open time, ms since epoch, UTC
    open      double precision NOT NULL,
    high      double precision NOT NULL,
    low       double precision NOT NULL,
    close     double precision NOT NULL,
    volume    double precision NOT NULL,
    PRIMARY KEY (series_id, ts)
);
-- time-range scans across series (quality sweeps, retention) without a second btree
CREATE INDEX IF NOT EXISTS bars_ts_brin ON bars USING brin (ts) WITH (pages_per_range = 32);

CREATE TABLE IF NOT EXISTS market_trades (
    exchange  text   NOT NULL,
    symbol    text   NOT NULL,
    trade_id  text   NOT NULL,
    ts        bigint NOT NULL,
    price     double precision NOT NULL,
    amount    double precision NOT NULL,
    side      text,
    PRIMARY KEY (exchange, symbol, trade_id)
);
CREATE INDEX IF NOT EXISTS market_trades_ts_brin ON market_trades USING brin (ts);
