-- Tenancy: namespace limits, fair claims, retention and deletion. Mirrors
-- store/sqlite/migrations/0004_tenancy.sql (the SQLite store runs the same logic in
-- store/sqlite/namespaces.py).
--
-- namespace_limits holds the state of a namespace's limits: a token bucket for
-- dispatch rates (tokens, updated_at), a reservation clock for start rates (next_at)
-- and how often work was held back (waits). kind is 'start', 'workflow' or
-- 'activity'; task_queue is '' for the whole namespace. A claim that honours a cap or
-- a rate locks the namespace's row first, so claims of one limited namespace are
-- serialized across every worker process while unlimited namespaces never wait.
CREATE TABLE tether.namespace_limits (
    namespace   text NOT NULL,
    kind        text NOT NULL,
    task_queue  text NOT NULL DEFAULT '',
    tokens      float8 NOT NULL DEFAULT 0,
    updated_at  float8 NOT NULL DEFAULT 0,
    next_at     float8 NOT NULL DEFAULT 0,
    waits       bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, kind, task_queue)
);

CREATE INDEX tasks_leased ON tether.tasks (namespace, kind) WHERE owner IS NOT NULL;
CREATE INDEX runs_closed ON tether.runs (namespace, closed_at) WHERE closed_at IS NOT NULL;

-- What a claim returns, for workflow and activity tasks alike.
CREATE TYPE tether.claimed_task AS (
    id bigint, namespace text, run_id text, workflow_id text, workflow_type text,
    task_queue text, token bigint, step integer, name text, args json, options json,
    attempt integer, scheduled_at float8, heartbeat json, last_failure json, lost boolean
);

-- Lock a limiter row (created full) and refill its bucket at p_rate tokens a second,
-- holding at most one second of tokens (and at least one); return the tokens.
CREATE FUNCTION tether.limiter_tokens(
    p_namespace text, p_kind text, p_queue text, p_rate float8, p_now float8
) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    v_burst float8 := greatest(coalesce(p_rate, 1), 1);
    v_tokens float8;
BEGIN
    INSERT INTO tether.namespace_limits (namespace, kind, task_queue, tokens, updated_at)
        VALUES (p_namespace, p_kind, p_queue, v_burst, p_now) ON CONFLICT DO NOTHING;
    UPDATE tether.namespace_limits l
        SET tokens = CASE WHEN p_rate IS NULL THEN l.tokens
                     ELSE least(v_burst, l.tokens + greatest(p_now - l.updated_at, 0) * p_rate)
                     END,
            updated_at = p_now
        WHERE l.namespace = p_namespace AND l.kind = p_kind AND l.task_queue = p_queue
        RETURNING l.tokens INTO v_tokens;
    RETURN v_tokens;
END $$;

-- Claim up to p_limit ready tasks of one namespace from some queues, oldest first.
CREATE FUNCTION tether.claim_lane(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE sql AS $$
    WITH picked AS (
        SELECT t.id, t.owner IS NOT NULL AS lost FROM tether.tasks t
        WHERE t.kind = p_kind AND t.namespace = p_namespace AND t.task_queue = ANY (p_queues)
          AND t.visible_at <= p_now
        ORDER BY t.visible_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tether.tasks t
    SET owner = p_owner, visible_at = p_now + p_lease, token = t.token + 1,
        dirty = CASE WHEN p_kind = 'workflow' THEN false ELSE t.dirty END,
        attempt = t.attempt + CASE WHEN p_kind = 'activity' AND picked.lost THEN 1 ELSE 0 END
    FROM picked, tether.runs r
    WHERE t.id = picked.id AND r.namespace = t.namespace AND r.run_id = t.run_id
    RETURNING t.id, t.namespace, t.run_id, r.workflow_id, r.workflow_type, t.task_queue,
              t.token, t.step, t.name, t.args, t.options, t.attempt, t.scheduled_at,
              t.heartbeat, t.last_failure, picked.lost
$$;

-- Claim up to p_want tasks of one namespace under its cap (tasks of the kind leased
-- at once), its rate and its queues' rates. Counts a wait when a limit held back
-- work that was ready.
CREATE FUNCTION tether.claim_namespace(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_want integer,
    p_lease float8, p_now float8, p_cap integer, p_rate float8,
    p_rated_queues text[], p_queue_rates float8[]
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := p_want;
    v_tokens float8;
    v_left integer;
    v_got integer;
    v_lane integer;
    v_held boolean := false;
    v_limited boolean := p_cap IS NOT NULL OR p_rate IS NOT NULL
                         OR coalesce(array_length(p_rated_queues, 1), 0) > 0;
    j integer;
BEGIN
    IF v_limited THEN
        v_tokens := tether.limiter_tokens(p_namespace, p_kind, '', p_rate, p_now);
    END IF;
    IF p_cap IS NOT NULL THEN
        v_n := least(v_n, p_cap - (
            SELECT count(*) FROM tether.tasks t
            WHERE t.namespace = p_namespace AND t.kind = p_kind AND t.owner IS NOT NULL
              AND t.visible_at > p_now)::integer);
    END IF;
    IF p_rate IS NOT NULL THEN
        v_n := least(v_n, floor(v_tokens)::integer);
    END IF;
    v_n := greatest(v_n, 0);
    v_held := v_n < p_want;
    v_left := v_n;
    v_got := 0;
    FOR j IN 1..coalesce(array_length(p_rated_queues, 1), 0) LOOP
        CONTINUE WHEN NOT (p_rated_queues[j] = ANY (p_queues));
        v_tokens := tether.limiter_tokens(p_namespace, p_kind, p_rated_queues[j],
                                          p_queue_rates[j], p_now);
        v_lane := least(v_left, floor(v_tokens)::integer);
        v_held := v_held OR v_lane < v_left;
        RETURN QUERY SELECT * FROM tether.claim_lane(
            p_kind, p_owner, p_namespace, ARRAY[p_rated_queues[j]], v_lane, p_lease, p_now);
        GET DIAGNOSTICS v_lane = ROW_COUNT;
        UPDATE tether.namespace_limits SET tokens = tokens - v_lane
            WHERE namespace = p_namespace AND kind = p_kind AND task_queue = p_rated_queues[j];
        v_left := v_left - v_lane;
        v_got := v_got + v_lane;
    END LOOP;
    IF v_left > 0 THEN
        RETURN QUERY SELECT * FROM tether.claim_lane(
            p_kind, p_owner, p_namespace,
            ARRAY(SELECT unnest(p_queues) EXCEPT SELECT unnest(p_rated_queues)),
            v_left, p_lease, p_now);
        GET DIAGNOSTICS v_lane = ROW_COUNT;
        v_got := v_got + v_lane;
    END IF;
    IF v_limited THEN
        UPDATE tether.namespace_limits l
            SET tokens = l.tokens - CASE WHEN p_rate IS NULL THEN 0 ELSE v_got END,
                waits = l.waits + CASE WHEN v_held AND EXISTS (
                    SELECT 1 FROM tether.tasks t
                    WHERE t.kind = p_kind AND t.namespace = p_namespace
                      AND t.task_queue = ANY (p_queues) AND t.visible_at <= p_now)
                    THEN 1 ELSE 0 END
            WHERE l.namespace = p_namespace AND l.kind = p_kind AND l.task_queue = '';
    END IF;
END $$;

-- A fair claim over several namespaces, in the order given: first each takes up to
-- its share, then what is left of p_total goes to those that used all of theirs.
CREATE FUNCTION tether.claim_fair(
    p_kind text, p_owner text, p_queues text[], p_lease float8, p_total integer,
    p_namespaces text[], p_shares integer[], p_caps integer[], p_rates float8[],
    p_rate_namespaces text[], p_rated_queues text[], p_queue_rates float8[]
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_left integer := p_total;
    v_count integer := coalesce(array_length(p_namespaces, 1), 0);
    v_full boolean[] := array_fill(false, ARRAY[greatest(v_count, 1)]);
    v_want integer;
    v_got integer;
    v_pass integer;
    i integer;
BEGIN
    FOR v_pass IN 1..2 LOOP
        FOR i IN 1..v_count LOOP
            EXIT WHEN v_left <= 0;
            IF v_pass = 1 THEN
                v_want := least(p_shares[i], v_left);
            ELSIF v_full[i] THEN
                v_want := v_left;
            ELSE
                CONTINUE;
            END IF;
            CONTINUE WHEN v_want <= 0;
            RETURN QUERY SELECT * FROM tether.claim_namespace(
                p_kind, p_owner, p_namespaces[i], p_queues, v_want, p_lease, v_now,
                p_caps[i], p_rates[i],
                ARRAY(SELECT q.queue FROM unnest(p_rate_namespaces, p_rated_queues)
                      AS q (namespace, queue) WHERE q.namespace = p_namespaces[i]),
                ARRAY(SELECT q.rate FROM unnest(p_rate_namespaces, p_queue_rates)
                      AS q (namespace, rate) WHERE q.namespace = p_namespaces[i]));
            GET DIAGNOSTICS v_got = ROW_COUNT;
            v_full[i] := v_got = v_want;
            v_left := v_left - v_got;
        END LOOP;
    END LOOP;
END $$;

-- Reserve a start under the namespace's start rate and its queue's (GCRA: next_at is
-- when the bucket is empty again; a start may begin up to one second's worth of
-- starts before it). Returns the seconds the caller must wait.
CREATE FUNCTION tether.reserve_start(
    p_namespace text, p_queue text, p_rate float8, p_queue_rate float8
) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_queues text[] := ARRAY['', p_queue];
    v_rates float8[] := ARRAY[p_rate, p_queue_rate];
    v_at float8 := v_now;
    v_next float8;
    j integer;
BEGIN
    FOR j IN 1..2 LOOP
        CONTINUE WHEN v_rates[j] IS NULL;
        INSERT INTO tether.namespace_limits (namespace, kind, task_queue)
            VALUES (p_namespace, 'start', v_queues[j]) ON CONFLICT DO NOTHING;
        SELECT l.next_at INTO v_next FROM tether.namespace_limits l
            WHERE l.namespace = p_namespace AND l.kind = 'start' AND l.task_queue = v_queues[j]
            FOR UPDATE;
        v_at := greatest(v_at, v_next - (greatest(v_rates[j], 1) - 1) / v_rates[j]);
    END LOOP;
    FOR j IN 1..2 LOOP
        CONTINUE WHEN v_rates[j] IS NULL;
        UPDATE tether.namespace_limits l
            SET next_at = greatest(l.next_at, v_at) + 1 / v_rates[j],
                waits = l.waits + CASE WHEN v_at > v_now THEN 1 ELSE 0 END
            WHERE l.namespace = p_namespace AND l.kind = 'start' AND l.task_queue = v_queues[j];
    END LOOP;
    RETURN v_at - v_now;
END $$;

-- The tables of the schema holding rows of a namespace (or of its runs, with
-- p_run_rows), the table of runs last: other tables may refer to it. Tables added by
-- later migrations are found here as long as they name their namespace and run.
CREATE FUNCTION tether.namespaced_tables(p_run_rows boolean) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT c.relname::text FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'tether' AND c.relkind IN ('r', 'p')
      AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                  AND a.attname = 'namespace' AND NOT a.attisdropped)
      AND (NOT p_run_rows OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                                     AND a.attname = 'run_id' AND NOT a.attisdropped))
    ORDER BY c.relname = 'runs', c.relname
$$;

-- Remove a namespace and every row of it. Its row is locked first (a start in it
-- waits, then finds no namespace), then its runs (writers lock a run before its tasks).
CREATE FUNCTION tether.delete_namespace(p_namespace text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
BEGIN
    PERFORM 1 FROM tether.namespaces WHERE name = p_namespace FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM 1 FROM tether.runs WHERE namespace = p_namespace FOR UPDATE;
    FOR v_table IN SELECT * FROM tether.namespaced_tables(false) LOOP
        EXECUTE format('DELETE FROM tether.%I WHERE namespace = $1', v_table) USING p_namespace;
    END LOOP;
    DELETE FROM tether.namespaces WHERE name = p_namespace;
    RETURN true;
END $$;

-- Remove runs of a namespace and every row of them (their run rows locked first).
CREATE FUNCTION tether.delete_runs(p_namespace text, p_run_ids text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_table text;
    v_locked text[];
BEGIN
    SELECT array_agg(run_id) INTO v_locked FROM (
        SELECT run_id FROM tether.runs WHERE namespace = p_namespace
        AND run_id = ANY (p_run_ids) ORDER BY run_id FOR UPDATE) AS r;
    IF v_locked IS NULL THEN
        RETURN 0;
    END IF;
    FOR v_table IN SELECT * FROM tether.namespaced_tables(true) LOOP
        EXECUTE format('DELETE FROM tether.%I WHERE namespace = $1 AND run_id = ANY ($2)',
                       v_table) USING p_namespace, v_locked;
    END LOOP;
    RETURN array_length(v_locked, 1);
END $$;

-- Remove up to p_limit runs closed before p_before; runs another caller is removing
-- are skipped.
CREATE FUNCTION tether.purge_closed_runs(p_namespace text, p_before float8, p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_ids text[];
BEGIN
    SELECT array_agg(run_id) INTO v_ids FROM (
        SELECT run_id FROM tether.runs WHERE namespace = p_namespace AND closed_at < p_before
        ORDER BY closed_at LIMIT p_limit FOR UPDATE SKIP LOCKED) AS r;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    RETURN tether.delete_runs(p_namespace, v_ids);
END $$;
