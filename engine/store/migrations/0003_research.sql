-- Research: every backtest run and optimisation study, reproducible from its record (engine/research/).

CREATE TABLE IF NOT EXISTS backtest_runs (
    id             text PRIMARY KEY CHECK (id ~ '^bt_[0-9a-f]{16}$'),
    strategy       text NOT NULL,
    params         jsonb NOT NULL,                -- the validated parameters (defaults filled in)
    config         jsonb NOT NULL,                -- BacktestConfig: costs, fills, direction, stops
    metrics_config jsonb NOT NULL,                -- MetricsConfig: risk-free rate, annualisation
    exchange       text NOT NULL,
    symbol         text NOT NULL,
    timeframe      text NOT NULL,
    start_ts       bigint NOT NULL,               -- first bar's open time, ms since epoch UTC
    end_ts         bigint NOT NULL,               -- last bar's open time (inclusive)
    n_bars         integer NOT NULL CHECK (n_bars > 0),
    data_checksum  text NOT NULL,                 -- sha256 of the bar arrays (engine.backtest.Bars.checksum)
    engine_version text NOT NULL,                 -- iqts, numba and numpy versions that produced the run
    metrics        jsonb NOT NULL,                -- Metrics; non-finite values as "NaN" / "Infinity"
    equity         bytea NOT NULL,                -- float64 little-endian, one value per bar close
    equity_ts      bytea NOT NULL,                -- int64 little-endian ms, the bars' open times
    trades         jsonb NOT NULL,                -- one object per trade (engine.backtest.TRADE_DTYPE)
    study_id       text,                          -- set when the run is a study's best trial
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL
);
CREATE INDEX IF NOT EXISTS backtest_runs_created ON backtest_runs (created_at DESC);
CREATE INDEX IF NOT EXISTS backtest_runs_series ON backtest_runs (symbol, timeframe, strategy);

CREATE TABLE IF NOT EXISTS studies (
    id            text PRIMARY KEY CHECK (id ~ '^st_[0-9a-f]{16}$'),
    optuna_name   text NOT NULL UNIQUE,           -- the Optuna study every worker joins
    storage       text NOT NULL CHECK (storage IN ('journal', 'rdb', 'memory')),
    kind          text NOT NULL CHECK (kind IN ('optimize', 'walk_forward')),
    strategy      text NOT NULL,
    exchange      text NOT NULL,
    symbol        text NOT NULL,
    timeframe     text NOT NULL,
    start_ts      bigint NOT NULL,
    end_ts        bigint NOT NULL,
    n_bars        integer NOT NULL,
    data_checksum text NOT NULL,
    objectives    jsonb NOT NULL,                 -- [{"metric": "sharpe", "direction": "maximize"}, ...]
    spec          jsonb NOT NULL,                 -- StudySpec: everything a worker needs to evaluate trials
    status        text NOT NULL CHECK (status IN ('created', 'running', 'done', 'failed')),
    n_trials      integer NOT NULL DEFAULT 0,     -- finished trials (complete, pruned, failed) at the last update
    best_params   jsonb,
    best_value    double precision,               -- first objective of the best trial (NULL if undefined)
    best_values   jsonb,                          -- every objective of the best trial
    best_run_id   text REFERENCES backtest_runs (id),
    report        jsonb,                          -- overfitting guards: deflated Sharpe, trials, top trials
    walk_forward  jsonb,                          -- the out-of-sample report (WalkForwardReport)
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text NOT NULL
);
CREATE INDEX IF NOT EXISTS studies_created ON studies (created_at DESC);

-- Optuna's journal (operation log) of each study: workers on any machine append and replay it. Appends are
-- serialised per journal by an advisory lock, so seq is dense and commits land in seq order: a reader that sees
-- row n has seen every row before it.
CREATE TABLE IF NOT EXISTS optuna_journal (
    journal text   NOT NULL,
    seq     bigint NOT NULL,
    log     text   NOT NULL,                      -- one Optuna journal operation, JSON (may hold Infinity)
    PRIMARY KEY (journal, seq)
);

-- One round trip per append: lock the journal, then (in a new snapshot: plpgsql statements of a volatile
-- function each take one under READ COMMITTED) number the logs after the last committed one.
CREATE OR REPLACE FUNCTION optuna_journal_append(p_journal text, p_logs text[]) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first_seq bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(443875331, hashtext(p_journal));  -- 0x1A750003
    SELECT coalesce(max(seq) + 1, 0) INTO first_seq FROM optuna_journal WHERE journal = p_journal;
    INSERT INTO optuna_journal (journal, seq, log)
        SELECT p_journal, first_seq + t.ord - 1, t.log FROM unnest(p_logs) WITH ORDINALITY AS t(log, ord);
    RETURN first_seq;
END
$$;

-- Optuna's own RDB schema (storage 'rdb'), kept apart from IQTS tables: its "studies" and "trials" tables live
-- here, reached with search_path=optuna.
CREATE SCHEMA IF NOT EXISTS optuna;
