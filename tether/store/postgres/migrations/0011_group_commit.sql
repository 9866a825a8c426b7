-- Group commit: the hot writes of many workflows (starts, workflow task completions,
-- activity outcomes) travel as one array argument, so one round trip and one
-- transaction (one WAL flush) carry all of them. store/postgres/commits.py gathers them.
--
-- Each operation runs in a block of its own (a subtransaction): a refused operation
-- (lease lost, duplicate workflow id, unknown namespace) rolls back alone and reports
-- its SQLSTATE, message and constraint in its result row (and in the server log, as
-- LOG "tether refused ...": the error a single statement would have logged); the others
-- commit. Rows come
-- back in the order of the array. The caller sorts each batch by (namespace, run_id),
-- so two batches lock runs in the same order and cannot deadlock on each other.
-- Batches stay under 64 operations: PostgreSQL caches 64 subtransaction ids per
-- backend, and past that every other session's snapshots get slower.

-- One new run, with its first workflow task: ready for any worker (owner NULL), or
-- leased to the starting process's worker (an eager start), or already run by that
-- worker (executed: the task's outcome follows, complete_workflow_task's arguments,
-- and created_at is the time the task saw).
CREATE TYPE tether.start_op AS (
    namespace      text,
    run_id         text,
    workflow_id    text,
    workflow_type  text,
    task_queue     text,
    started        text,
    owner          text,
    lease          float8,
    created_at     float8,
    executed       boolean,
    event_types    text[],
    event_attrs    text[],
    act_steps      integer[],
    act_names      text[],
    act_queues     text[],
    act_args       text[],
    act_options    text[],
    act_owners     text[],
    timer_steps    integer[],
    timer_fire_at  float8[],
    cancel_timers  integer[],
    close_status   text,
    close_result   text,
    close_failure  text
);

-- The arguments of tether.complete_workflow_task, in its order.
CREATE TYPE tether.complete_op AS (
    namespace      text,
    run_id         text,
    task_id        bigint,
    token          bigint,
    lease          float8,
    event_types    text[],
    event_attrs    text[],
    act_steps      integer[],
    act_names      text[],
    act_queues     text[],
    act_args       text[],
    act_options    text[],
    act_owners     text[],
    timer_steps    integer[],
    timer_fire_at  float8[],
    cancel_timers  integer[],
    close_status   text,
    close_result   text,
    close_failure  text
);

-- The arguments of tether.advance_after_activity, in its order.
CREATE TYPE tether.advance_op AS (
    namespace      text,
    run_id         text,
    task_id        bigint,
    token          bigint,
    expected_seq   bigint,
    ts             float8,
    lease          float8,
    event_types    text[],
    event_attrs    text[],
    act_steps      integer[],
    act_names      text[],
    act_queues     text[],
    act_args       text[],
    act_options    text[],
    act_owners     text[],
    timer_steps    integer[],
    timer_fire_at  float8[],
    cancel_timers  integer[],
    close_status   text,
    close_result   text,
    close_failure  text
);

-- The arguments of tether.finish_activity, in its order.
CREATE TYPE tether.finish_op AS (
    namespace     text,
    run_id        text,
    task_id       bigint,
    token         bigint,
    outcome_type  text,
    started       text,
    done          text,
    claim_for     text,
    local_queues  text[],
    lease         float8
);

CREATE FUNCTION tether.start_runs(p_ops tether.start_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_created_at float8, o_task_id bigint,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.start_op;
    v_now float8 := tether.epoch();
BEGIN
    FOREACH v IN ARRAY p_ops LOOP
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_created_at := NULL; o_task_id := NULL; o_now := NULL; o_activity_steps := NULL;
        o_activity_ids := NULL; o_next_token := NULL; o_last_seq := NULL;
        BEGIN
            o_created_at := coalesce(v.created_at, v_now);
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq)
                VALUES (v.namespace, v.run_id, v.workflow_id, v.workflow_type, v.task_queue,
                        'running', o_created_at, 1);
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                VALUES (v.namespace, v.run_id, 1, 'WorkflowStarted', o_created_at,
                        v.started::json);
            -- The lease runs on the database clock, whatever time the task saw.
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                      scheduled_at, owner, token)
                VALUES (v.namespace, v.run_id, 'workflow', v.task_queue,
                        CASE WHEN v.owner IS NULL THEN v_now ELSE v_now + v.lease END,
                        o_created_at, v.owner, CASE WHEN v.owner IS NULL THEN 0 ELSE 1 END)
                RETURNING id INTO o_task_id;
            o_last_seq := 1;
            IF v.owner IS NULL THEN
                PERFORM tether.notify_work(v.namespace, v.task_queue);
            ELSIF v.executed THEN
                SELECT c.o_now, c.o_activity_steps, c.o_activity_ids, c.o_next_token,
                       c.o_last_seq
                    INTO o_now, o_activity_steps, o_activity_ids, o_next_token, o_last_seq
                    FROM tether.complete_workflow_task(
                        v.namespace, v.run_id, o_task_id, 1, v.lease,
                        v.event_types, v.event_attrs,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS c;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                                    o_constraint = CONSTRAINT_NAME;
            RAISE LOG 'tether refused start_run(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION tether.complete_workflow_tasks(p_ops tether.complete_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.complete_op;
BEGIN
    FOREACH v IN ARRAY p_ops LOOP
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_now := NULL; o_activity_steps := NULL; o_activity_ids := NULL;
        o_next_token := NULL; o_last_seq := NULL;
        BEGIN
            SELECT c.o_now, c.o_activity_steps, c.o_activity_ids, c.o_next_token, c.o_last_seq
                INTO o_now, o_activity_steps, o_activity_ids, o_next_token, o_last_seq
                FROM tether.complete_workflow_task(
                    v.namespace, v.run_id, v.task_id, v.token, v.lease,
                    v.event_types, v.event_attrs,
                    v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                    v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                    v.close_status, v.close_result, v.close_failure) AS c;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                                    o_constraint = CONSTRAINT_NAME;
            RAISE LOG 'tether refused complete_workflow_task(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION tether.advance_after_activities(p_ops tether.advance_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_applied boolean, o_now float8, o_activity_steps integer[],
               o_activity_ids bigint[], o_last_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.advance_op;
BEGIN
    FOREACH v IN ARRAY p_ops LOOP
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_applied := NULL; o_now := NULL; o_activity_steps := NULL; o_activity_ids := NULL;
        o_last_seq := NULL;
        BEGIN
            SELECT a.o_applied, a.o_now, a.o_activity_steps, a.o_activity_ids, a.o_last_seq
                INTO o_applied, o_now, o_activity_steps, o_activity_ids, o_last_seq
                FROM tether.advance_after_activity(
                    v.namespace, v.run_id, v.task_id, v.token, v.expected_seq, v.ts, v.lease,
                    v.event_types, v.event_attrs,
                    v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                    v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                    v.close_status, v.close_result, v.close_failure) AS a;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                                    o_constraint = CONSTRAINT_NAME;
            RAISE LOG 'tether refused advance_after_activity(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

CREATE FUNCTION tether.finish_activities(p_ops tether.finish_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_task_id bigint, o_token bigint, o_task_queue text,
               o_workflow_id text, o_workflow_type text)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.finish_op;
BEGIN
    FOREACH v IN ARRAY p_ops LOOP
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_task_id := NULL; o_token := NULL; o_task_queue := NULL;
        o_workflow_id := NULL; o_workflow_type := NULL;
        BEGIN
            SELECT f.o_task_id, f.o_token, f.o_task_queue, f.o_workflow_id, f.o_workflow_type
                INTO o_task_id, o_token, o_task_queue, o_workflow_id, o_workflow_type
                FROM tether.finish_activity(
                    v.namespace, v.run_id, v.task_id, v.token, v.outcome_type, v.started,
                    v.done, v.claim_for, v.local_queues, v.lease) AS f;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                                    o_constraint = CONSTRAINT_NAME;
            RAISE LOG 'tether refused finish_activity(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        END;
        RETURN NEXT;
    END LOOP;
END $$;

-- Leaner fencing for the two hottest writes (same signatures and results as in
-- 0001_core.sql): the task is deleted under its lease condition in one statement,
-- instead of being locked first and deleted after (a row lock is a WAL record too).

CREATE OR REPLACE FUNCTION tether.complete_workflow_task(
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
    v_dirty boolean := false;
BEGIN
    o_now := tether.epoch();
    SELECT r.task_queue, r.last_seq INTO v_queue, o_last_seq FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    -- The common case: the task is still ours and no input came in while it ran.
    DELETE FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'workflow'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now
        AND NOT t.dirty;
    IF NOT FOUND THEN
        SELECT t.dirty INTO v_dirty FROM tether.tasks t
            WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'workflow'
            AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now
            FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
        END IF;
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
    IF v_dirty AND p_close_status IS NULL THEN
        -- Input came in while the task ran: the same task runs again, under a new token.
        UPDATE tether.tasks t SET token = t.token + 1, dirty = false, visible_at = o_now + p_lease
            WHERE t.id = p_task_id
            RETURNING t.token INTO o_next_token;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tether.advance_after_activity(
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
    IF o_last_seq <> p_expected_seq OR EXISTS (
        SELECT 1 FROM tether.tasks t
        WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind = 'workflow'
    ) THEN
        -- Declined; but a lost lease is still reported as such.
        PERFORM 1 FROM tether.tasks t
            WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
            AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
        END IF;
        RETURN;
    END IF;
    DELETE FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > o_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    o_last_seq := tether.append_events(p_namespace, p_run_id, p_event_types, p_event_attrs, p_ts);
    SELECT c.o_activity_steps, c.o_activity_ids INTO o_activity_steps, o_activity_ids
        FROM tether.apply_commit(
            p_namespace, p_run_id, v_queue, o_now, p_lease,
            p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options, p_act_owners,
            p_timer_steps, p_timer_fire_at, p_cancel_timers,
            p_close_status, p_close_result, p_close_failure) AS c;
    o_applied := true;
END $$;

-- Renew the leases of running activities. Lock order: the runs first, sorted, then
-- their tasks, as every batch above takes them (a batch's operations are sorted by
-- run, and each locks its run before its tasks); renewing the tasks alone, in another
-- order, would deadlock with a batch finishing some of them.
CREATE FUNCTION tether.extend_leases(
    p_ids bigint[], p_namespaces text[], p_tokens bigint[], p_lease float8
) RETURNS TABLE (o_id bigint, o_token bigint) LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM tether.runs r
        WHERE (r.namespace, r.run_id) IN (
            SELECT t.namespace, t.run_id FROM tether.tasks t WHERE t.id = ANY (p_ids))
        ORDER BY r.namespace, r.run_id
        FOR UPDATE OF r;
    RETURN QUERY
        UPDATE tether.tasks t SET visible_at = tether.epoch() + p_lease
        FROM unnest(p_ids, p_namespaces, p_tokens) AS x (id, namespace, token)
        WHERE t.id = x.id AND t.namespace = x.namespace AND t.kind = 'activity'
          AND t.token = x.token AND t.owner IS NOT NULL AND t.visible_at > tether.epoch()
        RETURNING t.id, t.token;
END $$;
