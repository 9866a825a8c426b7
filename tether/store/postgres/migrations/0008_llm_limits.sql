-- Provider limits shared by every worker process (see tether/store/llm_limits.py).
-- Mirrors the SQLite store. A call's ledger row is written before the call with the
-- outcome 'started' and the cost it reserves against the budget, and completed after.
ALTER TABLE tether.llm_usage ADD COLUMN reserved_usd float8 NOT NULL DEFAULT 0;

-- Token buckets and a provider's Retry-After, per (namespace, provider); the row of
-- provider '' is the namespace's budget lock. A level is NULL until first used.
CREATE TABLE tether.llm_limits (
    namespace      text NOT NULL,
    provider       text NOT NULL,
    requests       float8,
    tokens         float8,
    updated_at     float8 NOT NULL DEFAULT 0,
    blocked_until  float8 NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, provider)
);

-- Calls in flight, held until expires_at at most (a killed worker's slot comes back).
CREATE TABLE tether.llm_slots (
    namespace   text NOT NULL,
    provider    text NOT NULL,
    run_id      text NOT NULL,
    step        integer NOT NULL,
    attempt     integer NOT NULL,
    call        integer NOT NULL,
    expires_at  float8 NOT NULL,
    PRIMARY KEY (namespace, provider, run_id, step, attempt, call)
);
CREATE INDEX llm_slots_by_run ON tether.llm_slots (namespace, run_id, step);

CREATE FUNCTION tether.llm_refill(p_level float8, p_size float8, p_rate float8,
                                  p_elapsed float8) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_level IS NULL THEN p_size
                ELSE least(p_size, p_level + greatest(p_elapsed, 0) * p_rate / 60) END
$$;

CREATE FUNCTION tether.llm_bucket_wait(p_level float8, p_size float8, p_rate float8,
                                       p_amount float8) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_level >= least(p_amount, p_size) THEN 0
                ELSE (least(p_amount, p_size) - p_level) * 60 / p_rate END
$$;

-- Admit a call or refuse it (see begin_llm_call in tether/store/protocol.py). Locks:
-- the namespace's budget row first (only with a budget), then the provider's row, in
-- that order always, so two calls never wait on each other in a cycle.
CREATE FUNCTION tether.llm_begin(
    p_namespace text, p_run_id text, p_step integer, p_attempt integer, p_call integer,
    p_workflow_id text, p_provider text, p_model text, p_ts float8,
    p_estimate bigint, p_reserve float8,
    p_rpm float8, p_burst float8, p_tpm float8, p_concurrency integer, p_slot_lease float8,
    p_budget float8, p_since float8,
    OUT o_kind text, OUT o_wait float8, OUT o_spent float8
) LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_row tether.llm_limits;
    v_requests float8;
    v_tokens float8;
    v_size float8;
    v_wait float8;
    v_held integer;
    v_first float8;
BEGIN
    o_kind := ''; o_wait := 0; o_spent := 0;
    UPDATE tether.llm_usage SET outcome = 'abandoned', reserved_usd = 0
        WHERE namespace = p_namespace AND run_id = p_run_id AND step = p_step
          AND attempt < p_attempt AND outcome = 'started';
    DELETE FROM tether.llm_slots WHERE namespace = p_namespace AND run_id = p_run_id
        AND step = p_step AND attempt < p_attempt;
    IF p_budget IS NOT NULL THEN
        INSERT INTO tether.llm_limits (namespace, provider, updated_at)
            VALUES (p_namespace, '', v_now) ON CONFLICT DO NOTHING;
        PERFORM 1 FROM tether.llm_limits
            WHERE namespace = p_namespace AND provider = '' FOR UPDATE;
        SELECT coalesce(sum(CASE WHEN u.outcome = 'started' THEN u.reserved_usd
                                 ELSE u.cost_usd END), 0) INTO o_spent
            FROM tether.llm_usage u WHERE u.namespace = p_namespace AND u.ts >= p_since;
        IF o_spent >= p_budget OR o_spent + p_reserve > p_budget THEN
            o_kind := 'budget';
            RETURN;
        END IF;
    END IF;
    INSERT INTO tether.llm_limits (namespace, provider, updated_at)
        VALUES (p_namespace, p_provider, v_now) ON CONFLICT DO NOTHING;
    SELECT * INTO v_row FROM tether.llm_limits
        WHERE namespace = p_namespace AND provider = p_provider FOR UPDATE;
    v_requests := v_row.requests;
    v_tokens := v_row.tokens;
    o_wait := v_row.blocked_until - v_now;
    o_kind := 'blocked';
    IF p_rpm IS NOT NULL AND p_rpm > 0 THEN
        v_size := coalesce(p_burst, p_rpm);
        v_requests := tether.llm_refill(v_requests, v_size, p_rpm, v_now - v_row.updated_at);
        v_wait := tether.llm_bucket_wait(v_requests, v_size, p_rpm, 1);
        IF v_wait > o_wait THEN o_wait := v_wait; o_kind := 'requests'; END IF;
    END IF;
    IF p_tpm IS NOT NULL AND p_tpm > 0 THEN
        v_tokens := tether.llm_refill(v_tokens, p_tpm, p_tpm, v_now - v_row.updated_at);
        v_wait := tether.llm_bucket_wait(v_tokens, p_tpm, p_tpm, p_estimate);
        IF v_wait > o_wait THEN o_wait := v_wait; o_kind := 'tokens'; END IF;
    END IF;
    IF p_concurrency IS NOT NULL THEN
        DELETE FROM tether.llm_slots WHERE namespace = p_namespace AND provider = p_provider
            AND expires_at <= v_now;
        SELECT count(*), min(expires_at) INTO v_held, v_first FROM tether.llm_slots
            WHERE namespace = p_namespace AND provider = p_provider;
        IF v_held >= p_concurrency THEN
            -- No one knows when a call ends: look again soon (at most when a slot expires).
            v_wait := least(greatest(v_first - v_now, 0.05), 1.0);
            IF v_wait > o_wait THEN o_wait := v_wait; o_kind := 'concurrency'; END IF;
        END IF;
    END IF;
    IF o_wait > 0 THEN
        RETURN;
    END IF;
    o_kind := ''; o_wait := 0;
    UPDATE tether.llm_limits SET
        requests = CASE WHEN p_rpm > 0 THEN v_requests - 1 ELSE v_requests END,
        tokens = CASE WHEN p_tpm > 0 THEN v_tokens - p_estimate ELSE v_tokens END,
        updated_at = v_now
        WHERE namespace = p_namespace AND provider = p_provider;
    IF p_concurrency IS NOT NULL THEN
        INSERT INTO tether.llm_slots (namespace, provider, run_id, step, attempt, call,
                                      expires_at)
            VALUES (p_namespace, p_provider, p_run_id, p_step, p_attempt, p_call,
                    v_now + p_slot_lease)
            ON CONFLICT (namespace, provider, run_id, step, attempt, call)
            DO UPDATE SET expires_at = excluded.expires_at;
    END IF;
    INSERT INTO tether.llm_usage (namespace, run_id, step, attempt, call, workflow_id,
        workflow_type, provider, model, input_tokens, output_tokens, cost_usd, latency_ms,
        outcome, ts, reserved_usd)
    VALUES (p_namespace, p_run_id, p_step, p_attempt, p_call, p_workflow_id,
        coalesce((SELECT workflow_type FROM tether.runs
                  WHERE namespace = p_namespace AND run_id = p_run_id), ''),
        p_provider, p_model, 0, 0, 0, 0, 'started', p_ts, p_reserve)
    ON CONFLICT DO NOTHING;
END $$;

-- Complete a started call (see finish_llm_call in tether/store/protocol.py).
CREATE FUNCTION tether.llm_finish(
    p_namespace text, p_run_id text, p_step integer, p_attempt integer, p_call integer,
    p_provider text, p_input bigint, p_output bigint, p_cost float8, p_latency float8,
    p_outcome text, p_estimate bigint, p_block float8
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tether.llm_slots WHERE namespace = p_namespace AND provider = p_provider
        AND run_id = p_run_id AND step = p_step AND attempt = p_attempt AND call = p_call;
    UPDATE tether.llm_usage SET input_tokens = p_input, output_tokens = p_output,
            cost_usd = p_cost, latency_ms = p_latency, outcome = p_outcome, reserved_usd = 0
        WHERE namespace = p_namespace AND run_id = p_run_id AND step = p_step
          AND attempt = p_attempt AND call = p_call AND outcome IN ('started', 'abandoned');
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    -- The tokens bucket was charged the estimate: charge the difference (a level below
    -- zero delays the next calls until it has refilled).
    UPDATE tether.llm_limits SET tokens = tokens - (p_input + p_output - p_estimate),
            blocked_until = greatest(blocked_until, tether.epoch() + coalesce(p_block, 0))
        WHERE namespace = p_namespace AND provider = p_provider
          AND (tokens IS NOT NULL OR p_block IS NOT NULL);
    RETURN true;
END $$;
