-- The LLM usage ledger: one row per model call, keyed so that recording the same call
-- twice changes nothing (see tether/store/usage.py). workflow_type is copied from the
-- run when the row is written, so reports need no join. Mirrors the SQLite store.
CREATE TABLE tether.llm_usage (
    namespace      text NOT NULL,
    run_id         text NOT NULL,
    step           integer NOT NULL,
    attempt        integer NOT NULL,
    call           integer NOT NULL,
    workflow_id    text NOT NULL,
    workflow_type  text NOT NULL,
    provider       text NOT NULL,
    model          text NOT NULL,
    input_tokens   bigint NOT NULL,
    output_tokens  bigint NOT NULL,
    cost_usd       float8 NOT NULL,
    latency_ms     float8 NOT NULL,
    outcome        text NOT NULL,
    ts             float8 NOT NULL,
    PRIMARY KEY (namespace, run_id, step, attempt, call)
);
CREATE INDEX llm_usage_by_time ON tether.llm_usage (namespace, ts);
