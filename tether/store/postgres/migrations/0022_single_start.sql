-- A lone start, as a function of its own (commits.py sends a batch of one as a call of
-- its operation's function, 0021). start_runs wrote a batch of one or two starts one
-- by one, each in a subtransaction that turns a refusal into the batch's row; alone, a
-- refusal is the statement's own error, and the array of composites, the loop and the
-- subtransaction are work for nothing. W2 starts every run alone.
--
-- The arguments are tether.start_op's fields in order; the result is start_runs's row
-- without its three refusal columns. The body is start_runs's one-by-one path.
CREATE FUNCTION tether.start_run_one(
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
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        VALUES (p_namespace, p_run_id, 1, 'WorkflowStarted', o_created_at, p_started::json);
    IF p_executed THEN
        o_now := v_now;
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT p_namespace, p_run_id, 1 + e.i, e.type, v_now, e.attrs::json
            FROM unnest(p_event_types, p_event_attrs) WITH ORDINALITY AS e (type, attrs, i);
        SELECT c.o_activity_steps, c.o_activity_ids INTO o_activity_steps, o_activity_ids
            FROM tether.apply_commit(
                p_namespace, p_run_id, p_task_queue, v_now, p_lease,
                p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
                p_close_status, p_close_result, p_close_failure) AS c;
    ELSE
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
