-- Eval harness runs (evals/): one row per `iqts eval`, its summary and every scenario's transcript and verdicts.
CREATE TABLE IF NOT EXISTS eval_runs (
    id          text PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL,
    model       text NOT NULL,
    model_label text NOT NULL,
    dataset     text NOT NULL,
    category    text,
    repeat      integer NOT NULL CHECK (repeat >= 1),
    git_commit  text,
    machine     text NOT NULL DEFAULT '',
    summary     jsonb NOT NULL,
    outcomes    jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS eval_runs_started ON eval_runs (started_at DESC);
