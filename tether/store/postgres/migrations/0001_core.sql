-- Runs, their histories, and the tasks and timers that move them forward, in the
-- schema "tether". Mirrors the SQLite store (store/sqlite/migrations/0001_core.sql).
--
-- Times are Unix seconds (float8) from the database clock, tether.epoch(): every lease
-- and every visibility check is judged by one clock, whatever the workers' clocks say.
-- A task is claimable exactly when visible_at <= epoch(): claiming sets visible_at to
-- the end of the lease, so an expired lease makes the task claimable again.
--
-- Payloads are "json" (kept verbatim as the codec wrote them), not "jsonb", which
-- would rewrite numbers (1e300 comes back as an integer) and reorder keys.
--
-- Lock order: a write that touches several rows of a run locks the run row first,
-- then its tasks; claims only lock task rows, with SKIP LOCKED. So writes never
-- deadlock with each other.
--
-- Wake-ups: NOTIFY tether_work '["namespace", "task_queue"]' when a task is inserted
-- or released unowned (ready now or at its visible_at); NOTIFY tether_closed
-- '["namespace", "run_id"]' when a run closes.
CREATE SCHEMA IF NOT EXISTS tether;
COMMENT ON SCHEMA tether IS 'Tether store';

CREATE TABLE tether.schema_version (
    version     integer PRIMARY KEY,
    applied_at  timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION tether.epoch() RETURNS float8
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT extract(epoch FROM now())::float8 $$;

CREATE TABLE tether.namespaces (
    name        text PRIMARY KEY,
    created_at  float8 NOT NULL,
    settings    jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE tether.runs (
    namespace     text NOT NULL REFERENCES tether.namespaces (name),
    run_id        text NOT NULL,
    workflow_id   text NOT NULL,
    workflow_type text NOT NULL,
    task_queue    text NOT NULL,
    status        text NOT NULL,
    created_at    float8 NOT NULL,
    closed_at     float8,
    result        json,
    failure       json,
    last_seq      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, run_id)
);
CREATE UNIQUE INDEX runs_open_workflow_id ON tether.runs (namespace, workflow_id)
    WHERE status = 'running';
CREATE INDEX runs_by_workflow_id ON tether.runs (namespace, workflow_id, created_at);
CREATE INDEX runs_by_created ON tether.runs (namespace, created_at, run_id);

CREATE TABLE tether.events (
    namespace  text NOT NULL,
    run_id     text NOT NULL,
    seq        bigint NOT NULL,
    type       text NOT NULL,
    ts         float8 NOT NULL,
    attrs      json NOT NULL,
    PRIMARY KEY (namespace, run_id, seq)
);

CREATE TABLE tether.tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace     text NOT NULL,
    run_id        text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('workflow', 'activity', 'timer')),
    task_queue    text NOT NULL,
    step          integer NOT NULL DEFAULT 0,
    visible_at    float8 NOT NULL,
    owner         text,
    token         bigint NOT NULL DEFAULT 0,
    dirty         boolean NOT NULL DEFAULT false,
    attempt       integer NOT NULL DEFAULT 1,
    scheduled_at  float8 NOT NULL,
    name          text,
    args          json,
    options       json,
    heartbeat     json,
    last_failure  json,
    error         text
) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE UNIQUE INDEX tasks_one_workflow_task ON tether.tasks (namespace, run_id)
    WHERE kind = 'workflow';
CREATE INDEX tasks_ready ON tether.tasks (kind, namespace, task_queue, visible_at);
CREATE INDEX tasks_by_run ON tether.tasks (namespace, run_id, kind, step);

-- -- helpers ------------------------------------------------------------------------

CREATE FUNCTION tether.notify_work(p_namespace text, p_queue text) RETURNS void
    LANGUAGE sql
    AS $$ SELECT pg_notify('tether_work', json_build_array(p_namespace, p_queue)::text) $$;

CREATE FUNCTION tether.notify_closed(p_namespace text, p_run_id text) RETURNS void
    LANGUAGE sql
    AS $$ SELECT pg_notify('tether_closed', json_build_array(p_namespace, p_run_id)::text) $$;

-- Append events after the run's last one (the caller holds the run row); return the
-- new last seq.
CREATE FUNCTION tether.append_events(
    p_namespace text, p_run_id text, p_types text[], p_attrs text[], p_now float8
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_types, 1), 0);
    v_last bigint;
BEGIN
    UPDATE tether.runs SET last_seq = last_seq + v_count
        WHERE namespace = p_namespace AND run_id = p_run_id
        RETURNING last_seq INTO v_last;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, v_last - v_count + e.i, e.type, p_now, e.attrs::json
        FROM unnest(p_types, p_attrs) WITH ORDINALITY AS e (type, attrs, i);
    RETURN v_last;
END $$;

-- Make sure the run has a workflow task; mark a leased one dirty so it runs again.
-- Returns the task's id and whether it can be claimed now.
CREATE FUNCTION tether.request_workflow_task(
    p_namespace text, p_run_id text, p_queue text, p_now float8,
    OUT o_task_id bigint, OUT o_ready boolean
) LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tether.tasks AS t (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
        VALUES (p_namespace, p_run_id, 'workflow', p_queue, p_now, p_now)
        ON CONFLICT (namespace, run_id) WHERE kind = 'workflow' DO UPDATE SET
            dirty = CASE WHEN t.owner IS NOT NULL AND t.visible_at > excluded.visible_at
                    THEN true ELSE t.dirty END
        RETURNING t.id, t.visible_at <= p_now INTO o_task_id, o_ready;
END $$;

-- -- write operations, one transaction each --------------------------------------------
-- Errors: SQLSTATE TT001 = lease lost, TT002 = run not found, TT003 = run already closed.

-- Write a workflow task's commands other than its events (the caller holds the run
-- row); return the steps and ids of the activities it scheduled.
CREATE FUNCTION tether.apply_commit(
    p_namespace text, p_run_id text, p_queue text, p_now float8, p_lease float8,
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    OUT o_activity_steps integer[], OUT o_activity_ids bigint[]
) LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(array_length(p_act_steps, 1), 0) > 0 THEN
        WITH inserted AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN p_now ELSE p_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   p_now, a.name, a.args::json, a.options::json
            FROM unnest(p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                        p_act_owners) AS a (step, name, queue, args, options, owner)
            RETURNING step, id
        )
        SELECT array_agg(i.step), array_agg(i.id) INTO o_activity_steps, o_activity_ids
            FROM inserted i;
        PERFORM tether.notify_work(p_namespace, q.queue)
            FROM (SELECT DISTINCT a.queue
                  FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                  WHERE a.owner IS NULL) AS q;
    END IF;
    IF coalesce(array_length(p_timer_steps, 1), 0) > 0 THEN
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                  scheduled_at)
            SELECT p_namespace, p_run_id, 'timer', p_queue, tm.step, tm.fire_at, p_now
            FROM unnest(p_timer_steps, p_timer_fire_at) AS tm (step, fire_at);
        PERFORM tether.notify_work(p_namespace, p_queue);
    END IF;
    IF coalesce(array_length(p_cancel_timers, 1), 0) > 0 THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id
            AND kind = 'timer' AND step = ANY (p_cancel_timers);
    END IF;
    IF p_close_status IS NOT NULL THEN
        UPDATE tether.runs SET status = p_close_status, result = p_close_result::json,
                failure = p_close_failure::json, closed_at = p_now
            WHERE namespace = p_namespace AND run_id = p_run_id;
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        PERFORM tether.notify_closed(p_namespace, p_run_id);
    END IF;
END $$;

CREATE FUNCTION tether.complete_workflow_task(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint, p_lease float8,
    p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    OUT o_now float8, OUT o_activity_steps integer[], OUT o_activity_ids bigint[],
    OUT o_next_token bigint, OUT o_last_seq bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
    v_dirty boolean;
BEGIN
    o_now := tether.epoch();
    SELECT r.task_queue, r.last_seq INTO v_queue, o_last_seq FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    SELECT t.dirty INTO v_dirty FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'workflow'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now
        FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    IF coalesce(array_length(p_event_types, 1), 0) > 0 THEN
        o_last_seq := tether.append_events(p_namespace, p_run_id, p_event_types, p_event_attrs,
                                           o_now);
    END IF;
    SELECT c.o_activity_steps, c.o_activity_ids INTO o_activity_steps, o_activity_ids
        FROM tether.apply_commit(
            p_namespace, p_run_id, v_queue, o_now, p_lease,
            p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options, p_act_owners,
            p_timer_steps, p_timer_fire_at, p_cancel_timers,
            p_close_status, p_close_result, p_close_failure) AS c;
    IF p_close_status IS NOT NULL THEN
        NULL;  -- apply_commit removed the run's tasks, this one included
    ELSIF v_dirty THEN
        UPDATE tether.tasks t SET token = t.token + 1, dirty = false, visible_at = o_now + p_lease
            WHERE t.id = p_task_id
            RETURNING t.token INTO o_next_token;
    ELSE
        DELETE FROM tether.tasks t WHERE t.id = p_task_id;
    END IF;
END $$;

-- The local fast path: record an activity's outcome and the run's next step at once,
-- if the run's history still ends at p_expected_seq and no workflow task is pending;
-- otherwise change nothing and return o_applied = false.
CREATE FUNCTION tether.advance_after_activity(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_expected_seq bigint, p_ts float8, p_lease float8,
    p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    OUT o_applied boolean, OUT o_now float8, OUT o_activity_steps integer[],
    OUT o_activity_ids bigint[], OUT o_last_seq bigint
) LANGUAGE plpgsql AS $$
DECLARE
    v_queue text;
BEGIN
    o_now := tether.epoch();
    o_applied := false;
    SELECT r.task_queue, r.last_seq INTO v_queue, o_last_seq FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    PERFORM 1 FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now
        FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    IF o_last_seq <> p_expected_seq OR EXISTS (
        SELECT 1 FROM tether.tasks t
        WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind = 'workflow'
    ) THEN
        RETURN;
    END IF;
    DELETE FROM tether.tasks t WHERE t.id = p_task_id;
    o_last_seq := tether.append_events(p_namespace, p_run_id, p_event_types, p_event_attrs, p_ts);
    SELECT c.o_activity_steps, c.o_activity_ids INTO o_activity_steps, o_activity_ids
        FROM tether.apply_commit(
            p_namespace, p_run_id, v_queue, o_now, p_lease,
            p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options, p_act_owners,
            p_timer_steps, p_timer_fire_at, p_cancel_timers,
            p_close_status, p_close_result, p_close_failure) AS c;
    o_applied := true;
END $$;

CREATE FUNCTION tether.finish_activity(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_outcome_type text, p_started text, p_done text,
    p_claim_for text, p_local_queues text[], p_lease float8,
    OUT o_task_id bigint, OUT o_token bigint, OUT o_task_queue text,
    OUT o_workflow_id text, OUT o_workflow_type text
) LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_task_id bigint;
    v_ready boolean;
BEGIN
    SELECT r.task_queue, r.workflow_id, r.workflow_type
        INTO o_task_queue, o_workflow_id, o_workflow_type
        FROM tether.runs r WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    DELETE FROM tether.tasks t WHERE t.id = p_task_id AND t.namespace = p_namespace
        AND t.kind = 'activity' AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > v_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    PERFORM tether.append_events(p_namespace, p_run_id, ARRAY['ActivityStarted', p_outcome_type],
                                 ARRAY[p_started, p_done], v_now);
    SELECT w.o_task_id, w.o_ready INTO v_task_id, v_ready
        FROM tether.request_workflow_task(p_namespace, p_run_id, o_task_queue, v_now) AS w;
    IF v_ready AND p_claim_for IS NOT NULL AND o_task_queue = ANY (p_local_queues) THEN
        UPDATE tether.tasks t SET owner = p_claim_for, visible_at = v_now + p_lease,
                token = t.token + 1, dirty = false, error = NULL
            WHERE t.id = v_task_id
            RETURNING t.id, t.token INTO o_task_id, o_token;
    ELSIF v_ready THEN
        PERFORM tether.notify_work(p_namespace, o_task_queue);
    END IF;
END $$;

CREATE FUNCTION tether.fire_timers(p_namespaces text[], p_queues text[], p_limit integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_fired integer := 0;
    v_timer record;
    v_ready boolean;
BEGIN
    -- SKIP LOCKED on the timer and its run: concurrent callers fire disjoint timers,
    -- and a run being written by someone else is left for the next round.
    FOR v_timer IN
        WITH due AS (
            SELECT t.id FROM tether.tasks t
            JOIN tether.runs r ON r.namespace = t.namespace AND r.run_id = t.run_id
            WHERE t.kind = 'timer' AND t.namespace = ANY (p_namespaces)
              AND t.task_queue = ANY (p_queues) AND t.visible_at <= v_now
            ORDER BY t.visible_at LIMIT p_limit
            FOR UPDATE OF t, r SKIP LOCKED
        )
        DELETE FROM tether.tasks t USING due WHERE t.id = due.id
        RETURNING t.namespace, t.run_id, t.step, t.task_queue, t.visible_at
    LOOP
        PERFORM tether.append_events(v_timer.namespace, v_timer.run_id, ARRAY['TimerFired'],
                                     ARRAY[json_build_object('step', v_timer.step)::text], v_now);
        -- A timer lives on its run's workflow task queue.
        SELECT w.o_ready INTO v_ready FROM tether.request_workflow_task(
            v_timer.namespace, v_timer.run_id, v_timer.task_queue, v_now) AS w;
        IF v_ready THEN
            PERFORM tether.notify_work(v_timer.namespace, v_timer.task_queue);
        END IF;
        v_fired := v_fired + 1;
    END LOOP;
    RETURN v_fired;
END $$;

CREATE FUNCTION tether.terminate_run(
    p_namespace text, p_run_id text, p_reason text, p_identity text
) RETURNS SETOF tether.runs LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_status text;
    v_run tether.runs;
BEGIN
    SELECT status INTO v_status FROM tether.runs
        WHERE namespace = p_namespace AND run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such run' USING ERRCODE = 'TT002';
    END IF;
    IF v_status <> 'running' THEN
        RAISE EXCEPTION 'the run is already %', v_status USING ERRCODE = 'TT003';
    END IF;
    PERFORM tether.append_events(
        p_namespace, p_run_id, ARRAY['WorkflowTerminated'],
        ARRAY[json_build_object('reason', p_reason, 'identity', p_identity)::text], v_now);
    DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
    UPDATE tether.runs SET status = 'terminated', closed_at = v_now,
            failure = json_build_object('code', 'terminated', 'message',
                                        'terminated by ' || p_identity || ': ' || p_reason)
        WHERE namespace = p_namespace AND run_id = p_run_id
        RETURNING * INTO v_run;
    PERFORM tether.notify_closed(p_namespace, p_run_id);
    RETURN NEXT v_run;
END $$;
