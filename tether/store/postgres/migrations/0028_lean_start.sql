-- A lone start whose first workflow task ran in its process (W2's every start) wrote the
-- start's event and the task's events in two statements, and then the commit's
-- activities through apply_commit, which ran its statement announcing new activities
-- even when every one of them was leased to the committer (nothing to announce). Each
-- statement on events also parses the WHEN clauses of that table's triggers again.
-- Here the events go in one statement, and apply_commit announces only unleased
-- activities, as the lone advance does (0023). Same signatures and results.
CREATE OR REPLACE FUNCTION tether.start_run_one(
    p_namespace text, p_run_id text, p_workflow_id text, p_workflow_type text,
    p_task_queue text, p_started text, p_owner text, p_lease float8, p_created_at float8,
    p_executed boolean, p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    OUT o_created_at float8, OUT o_task_id bigint, OUT o_now float8,
    OUT o_activity_steps integer[], OUT o_activity_ids bigint[], OUT o_next_token bigint,
    OUT o_last_seq bigint
) LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_count integer := CASE WHEN p_executed
                            THEN coalesce(array_length(p_event_types, 1), 0) ELSE 0 END;
BEGIN
    o_created_at := coalesce(p_created_at, v_now);
    o_last_seq := 1 + v_count;
    INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                             status, created_at, last_seq)
        VALUES (p_namespace, p_run_id, p_workflow_id, p_workflow_type, p_task_queue,
                'running', o_created_at, o_last_seq);
    IF p_executed THEN
        o_now := v_now;
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT p_namespace, p_run_id, e.i, e.type,
                   CASE WHEN e.i = 1 THEN o_created_at ELSE v_now END, e.attrs::json
            FROM unnest(array_prepend('WorkflowStarted'::text, p_event_types),
                        array_prepend(p_started, p_event_attrs))
                 WITH ORDINALITY AS e (type, attrs, i);
        SELECT c.o_activity_steps, c.o_activity_ids INTO o_activity_steps, o_activity_ids
            FROM tether.apply_commit(
                p_namespace, p_run_id, p_task_queue, v_now, p_lease,
                p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
                p_close_status, p_close_result, p_close_failure) AS c;
    ELSE
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            VALUES (p_namespace, p_run_id, 1, 'WorkflowStarted', o_created_at, p_started::json);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                  scheduled_at, owner, token)
            VALUES (p_namespace, p_run_id, 'workflow', p_task_queue,
                    CASE WHEN p_owner IS NULL THEN v_now ELSE v_now + p_lease END,
                    o_created_at, p_owner, CASE WHEN p_owner IS NULL THEN 0 ELSE 1 END)
            RETURNING id INTO o_task_id;
        IF p_owner IS NULL THEN
            PERFORM tether.notify_work(p_namespace, p_task_queue);
        END IF;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION tether.apply_commit(
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
END $$;
