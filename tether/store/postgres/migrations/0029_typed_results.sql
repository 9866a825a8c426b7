-- The lone writes of a run's steps (start_run_one, advance_after_activity) and the
-- apply_commit they share returned their rows through OUT parameters. A function with
-- OUT parameters returns an anonymous record: every call that reads it in FROM builds
-- the record's description again from the function's catalog row, and these rows are
-- big enough (the bodies) to be stored compressed, so each call also decompressed it:
-- 15-20 us a call here, about as much as one of the function's statements. A function
-- returning a named composite type takes the description from the type cache. Same
-- arguments, same result columns (names, types, order) as before.
--
-- And an advance that does not close its run no longer names status in its UPDATE of
-- runs: naming it made PostgreSQL consider the runs_closed trigger and prepare its
-- WHEN clause for every advance (three of W2's four writes), only to find it false.
CREATE TYPE tether.commit_result AS (o_activity_steps integer[], o_activity_ids bigint[]);
CREATE TYPE tether.start_result AS (
    o_created_at float8, o_task_id bigint, o_now float8, o_activity_steps integer[],
    o_activity_ids bigint[], o_next_token bigint, o_last_seq bigint
);
CREATE TYPE tether.advance_result AS (
    o_applied boolean, o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
    o_last_seq bigint
);

DROP FUNCTION tether.apply_commit(
    text, text, text, float8, float8, integer[], text[], text[], text[], text[], text[],
    integer[], float8[], integer[], text, text, text);
CREATE FUNCTION tether.apply_commit(
    p_namespace text, p_run_id text, p_queue text, p_now float8, p_lease float8,
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text
) RETURNS tether.commit_result LANGUAGE plpgsql AS $$
DECLARE
    r tether.commit_result;
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
        SELECT array_agg(i.step), array_agg(i.id) INTO r.o_activity_steps, r.o_activity_ids
            FROM inserted i;
        IF p_act_owners IS NULL OR array_position(p_act_owners, NULL) IS NOT NULL THEN
            PERFORM tether.notify_work(p_namespace, q.queue)
                FROM (SELECT DISTINCT a.queue
                      FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                      WHERE a.owner IS NULL) AS q;
        END IF;
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
    RETURN r;
END $$;

DROP FUNCTION tether.start_run_one(
    text, text, text, text, text, text, text, float8, float8, boolean, text[], text[],
    integer[], text[], text[], text[], text[], text[], integer[], float8[], integer[],
    text, text, text);
CREATE FUNCTION tether.start_run_one(
    p_namespace text, p_run_id text, p_workflow_id text, p_workflow_type text,
    p_task_queue text, p_started text, p_owner text, p_lease float8, p_created_at float8,
    p_executed boolean, p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text
) RETURNS tether.start_result LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_count integer := CASE WHEN p_executed
                            THEN coalesce(array_length(p_event_types, 1), 0) ELSE 0 END;
    r tether.start_result;
    c tether.commit_result;
BEGIN
    r.o_created_at := coalesce(p_created_at, v_now);
    r.o_last_seq := 1 + v_count;
    INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                             status, created_at, last_seq)
        VALUES (p_namespace, p_run_id, p_workflow_id, p_workflow_type, p_task_queue,
                'running', r.o_created_at, r.o_last_seq);
    IF p_executed THEN
        r.o_now := v_now;
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT p_namespace, p_run_id, e.i, e.type,
                   CASE WHEN e.i = 1 THEN r.o_created_at ELSE v_now END, e.attrs::json
            FROM unnest(array_prepend('WorkflowStarted'::text, p_event_types),
                        array_prepend(p_started, p_event_attrs))
                 WITH ORDINALITY AS e (type, attrs, i);
        c := tether.apply_commit(
            p_namespace, p_run_id, p_task_queue, v_now, p_lease,
            p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
            p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
            p_close_status, p_close_result, p_close_failure);
        r.o_activity_steps := c.o_activity_steps;
        r.o_activity_ids := c.o_activity_ids;
    ELSE
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            VALUES (p_namespace, p_run_id, 1, 'WorkflowStarted', r.o_created_at,
                    p_started::json);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                  scheduled_at, owner, token)
            VALUES (p_namespace, p_run_id, 'workflow', p_task_queue,
                    CASE WHEN p_owner IS NULL THEN v_now ELSE v_now + p_lease END,
                    r.o_created_at, p_owner, CASE WHEN p_owner IS NULL THEN 0 ELSE 1 END)
            RETURNING id INTO r.o_task_id;
        IF p_owner IS NULL THEN
            PERFORM tether.notify_work(p_namespace, p_task_queue);
        END IF;
    END IF;
    RETURN r;
END $$;

-- 0027's version but for the result type and the UPDATE of runs (see the top).
DROP FUNCTION tether.advance_after_activity(
    text, text, bigint, bigint, bigint, float8, float8, text[], text[], integer[], text[],
    text[], text[], text[], text[], integer[], float8[], integer[], text, text, text, boolean);
CREATE FUNCTION tether.advance_after_activity(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_expected_seq bigint, p_ts float8, p_lease float8,
    p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    p_local_close boolean
) RETURNS tether.advance_result LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_queue text;
    v_count integer := coalesce(cardinality(p_event_types), 0);
    v_awaited boolean;
    r tether.advance_result;
BEGIN
    r.o_now := tether.epoch();
    r.o_applied := false;
    SELECT x.task_queue, x.last_seq INTO v_queue, r.o_last_seq FROM tether.runs x
        WHERE x.namespace = p_namespace AND x.run_id = p_run_id FOR UPDATE;
    IF r.o_last_seq <> p_expected_seq OR EXISTS (
        SELECT 1 FROM tether.tasks t
        WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind = 'workflow'
    ) THEN
        -- Declined; but a lost lease is still reported as such.
        PERFORM 1 FROM tether.tasks t
            WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
            AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
        END IF;
        RETURN r;
    END IF;
    DELETE FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    IF p_close_status IS NULL THEN
        UPDATE tether.runs SET last_seq = last_seq + v_count
            WHERE namespace = p_namespace AND run_id = p_run_id
            RETURNING last_seq INTO r.o_last_seq;
    ELSE
        UPDATE tether.runs
            SET last_seq = last_seq + v_count, status = p_close_status,
                result = p_close_result::json, failure = p_close_failure::json,
                closed_at = r.o_now
            WHERE namespace = p_namespace AND run_id = p_run_id
            RETURNING last_seq, awaited INTO r.o_last_seq, v_awaited;
    END IF;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, r.o_last_seq - v_count + e.i, e.type, p_ts,
               e.attrs::json
        FROM unnest(p_event_types, p_event_attrs) WITH ORDINALITY AS e (type, attrs, i);
    r.o_applied := true;
    IF p_close_status IS NOT NULL THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        IF v_awaited OR NOT p_local_close THEN
            PERFORM tether.notify_closed(p_namespace, p_run_id);
        END IF;
        RETURN r;
    END IF;
    IF coalesce(cardinality(p_act_steps), 0) > 0 THEN
        WITH inserted AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN r.o_now ELSE r.o_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   r.o_now, a.name, a.args::json, a.options::json
            FROM unnest(p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                        p_act_owners) AS a (step, name, queue, args, options, owner)
            RETURNING step, id
        )
        SELECT array_agg(i.step), array_agg(i.id) INTO r.o_activity_steps, r.o_activity_ids
            FROM inserted i;
        IF p_act_owners IS NULL OR array_position(p_act_owners, NULL) IS NOT NULL THEN
            PERFORM tether.notify_work(p_namespace, q.queue)
                FROM (SELECT DISTINCT a.queue
                      FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                      WHERE a.owner IS NULL) AS q;
        END IF;
    END IF;
    IF coalesce(cardinality(p_timer_steps), 0) > 0
       OR coalesce(cardinality(p_cancel_timers), 0) > 0 THEN
        PERFORM tether.apply_commit(
            p_namespace, p_run_id, v_queue, r.o_now, p_lease,
            NULL, NULL, NULL, NULL, NULL, NULL,
            p_timer_steps, p_timer_fire_at, p_cancel_timers, NULL, NULL, NULL);
    END IF;
    RETURN r;
END $$;
