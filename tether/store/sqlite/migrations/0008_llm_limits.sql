-- Provider limits shared by every worker process (see tether/store/llm_limits.py).
-- A call's ledger row is written before the call with the outcome 'started' and the
-- cost it reserves against the budget, and completed after it.
ALTER TABLE llm_usage ADD COLUMN reserved_usd REAL NOT NULL DEFAULT 0;

-- Token buckets and a provider's Retry-After, per (namespace, provider). A level is
-- NULL until the limit is first used (a new bucket is full).
CREATE TABLE llm_limits (
    namespace      TEXT NOT NULL,
    provider       TEXT NOT NULL,
    requests       REAL,
    tokens         REAL,
    updated_at     REAL NOT NULL DEFAULT 0,
    blocked_until  REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, provider)
) WITHOUT ROWID;

-- Calls in flight, one row per call, held until expires_at at most: a worker killed
-- with a call in flight gives its slot back then (or when the step's next attempt
-- begins).
CREATE TABLE llm_slots (
    namespace   TEXT NOT NULL,
    provider    TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    step        INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    call        INTEGER NOT NULL,
    expires_at  REAL NOT NULL,
    PRIMARY KEY (namespace, provider, run_id, step, attempt, call)
) WITHOUT ROWID;
CREATE INDEX llm_slots_by_run ON llm_slots (namespace, run_id, step);
