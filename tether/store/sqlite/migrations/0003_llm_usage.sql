-- The LLM usage ledger: one row per model call, keyed so that recording the same call
-- twice changes nothing (see tether/store/usage.py). workflow_type is copied from the
-- run when the row is written, so reports need no join.
CREATE TABLE llm_usage (
    namespace      TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    step           INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    call           INTEGER NOT NULL,
    workflow_id    TEXT NOT NULL,
    workflow_type  TEXT NOT NULL,
    provider       TEXT NOT NULL,
    model          TEXT NOT NULL,
    input_tokens   INTEGER NOT NULL,
    output_tokens  INTEGER NOT NULL,
    cost_usd       REAL NOT NULL,
    latency_ms     REAL NOT NULL,
    outcome        TEXT NOT NULL,
    ts             REAL NOT NULL,
    PRIMARY KEY (namespace, run_id, step, attempt, call)
) WITHOUT ROWID;
CREATE INDEX llm_usage_by_time ON llm_usage (namespace, ts);
