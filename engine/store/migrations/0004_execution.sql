-- Audit log, approvals (the gate reads them), orders, order events and fills.

-- Append-only, hash-chained: each row's hash covers the previous row's hash and its own canonical text.
CREATE TABLE IF NOT EXISTS audit_log (
    seq        bigint PRIMARY KEY,
    ts         text   NOT NULL,            -- ISO 8601 UTC, exactly as hashed
    actor      text   NOT NULL,
    action     text   NOT NULL,
    subject    text   NOT NULL,
    payload    text   NOT NULL,            -- canonical JSON, exactly as hashed
    prev_hash  text   NOT NULL,
    hash       text   NOT NULL UNIQUE,
    payload_json jsonb GENERATED ALWAYS AS (payload::jsonb) STORED
);
CREATE INDEX IF NOT EXISTS audit_log_subject ON audit_log (subject);
CREATE INDEX IF NOT EXISTS audit_log_action ON audit_log (action);

CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Approval requests: what a human decides on. The execution gate releases an order only from a row here.
CREATE TABLE IF NOT EXISTS approval_requests (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('order', 'cancel', 'kill_switch_release', 'strategy_deployment')),
    intent          jsonb NOT NULL,
    intent_hash     text NOT NULL,
    requested_by    text NOT NULL,
    requester_kind  text NOT NULL,          -- mcp | chat | cli | api
    rationale       text NOT NULL DEFAULT '',
    evidence        jsonb NOT NULL DEFAULT '[]',
    risk_verdict    jsonb,
    status          text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'executed', 'failed')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    decided_by      text,
    decided_at      timestamptz,
    decision_reason text,
    decided_hash    text,                    -- the intent hash the approver saw and approved
    result          jsonb
);
CREATE INDEX IF NOT EXISTS approval_requests_status ON approval_requests (status, created_at DESC);

CREATE TABLE IF NOT EXISTS orders (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    approval_id      text NOT NULL UNIQUE REFERENCES approval_requests (id),
    client_order_id  text NOT NULL UNIQUE,
    account          text NOT NULL,
    venue            text NOT NULL,
    symbol           text NOT NULL,
    side             text NOT NULL,
    type             text NOT NULL,
    quantity         numeric NOT NULL CHECK (quantity > 0),
    price            numeric,
    stop_price       numeric,
    mode             text NOT NULL,
    strategy         text,
    status           text NOT NULL,
    filled_quantity  numeric NOT NULL DEFAULT 0,
    average_price    numeric,
    venue_order_id   text,
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_open ON orders (status) WHERE status IN ('new', 'submitted', 'partially_filled');

CREATE TABLE IF NOT EXISTS order_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id   bigint NOT NULL REFERENCES orders (id),
    ts         timestamptz NOT NULL DEFAULT now(),
    event      text NOT NULL,
    status     text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS order_events_order ON order_events (order_id, id);

CREATE TABLE IF NOT EXISTS fills (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id      bigint NOT NULL REFERENCES orders (id),
    fill_key      text NOT NULL,            -- venue trade id, or a deterministic key for venues without one
    account       text NOT NULL,
    strategy      text,
    symbol        text NOT NULL,
    side          text NOT NULL,
    quantity      numeric NOT NULL CHECK (quantity > 0),
    price         numeric NOT NULL CHECK (price > 0),
    fee           numeric NOT NULL,
    fee_currency  text NOT NULL,
    liquidity     text NOT NULL,
    ts            timestamptz NOT NULL,
    UNIQUE (order_id, fill_key)
);
CREATE INDEX IF NOT EXISTS fills_account ON fills (account, id);

-- Risk policy versions; every verdict records the version it was judged by.
CREATE TABLE IF NOT EXISTS risk_policies (
    version    text PRIMARY KEY,
    body       text NOT NULL,
    sha256     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
