-- An activity's outcome and its run's next step, alone (a batch of one, and a batch's
-- operations of other shapes, one by one): the statements of 0011's version without
-- the two functions it called for them. append_events bumped last_seq in one row
-- version and a close then wrote a second one (every index of runs again: the status
-- changed); here one UPDATE does both, as the set-based write_commits (0017) does.
-- A closing commit's activities and timers are not written (0011 wrote them and its
-- close deleted them with every task of the run, in the same transaction); new
-- activities are announced only when one of them is not leased to the committer.
-- Timers and cancelled timers, rare in a lone advance, still go through apply_commit.
-- Same signature, results and refusals as 0011's.
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
) LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_queue text;
    v_count integer := coalesce(cardinality(p_event_types), 0);
    v_closing boolean := p_close_status IS NOT NULL;
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
    UPDATE tether.runs
        SET last_seq = last_seq + v_count,
            status = coalesce(p_close_status, status),
            result = CASE WHEN v_closing THEN p_close_result::json ELSE result END,
            failure = CASE WHEN v_closing THEN p_close_failure::json ELSE failure END,
            closed_at = CASE WHEN v_closing THEN o_now ELSE closed_at END
        WHERE namespace = p_namespace AND run_id = p_run_id
        RETURNING last_seq INTO o_last_seq;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, o_last_seq - v_count + e.i, e.type, p_ts, e.attrs::json
        FROM unnest(p_event_types, p_event_attrs) WITH ORDINALITY AS e (type, attrs, i);
    o_applied := true;
    IF v_closing THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        PERFORM tether.notify_closed(p_namespace, p_run_id);
        RETURN;
    END IF;
    IF coalesce(cardinality(p_act_steps), 0) > 0 THEN
        WITH inserted AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN o_now ELSE o_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   o_now, a.name, a.args::json, a.options::json
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
    IF coalesce(cardinality(p_timer_steps), 0) > 0
       OR coalesce(cardinality(p_cancel_timers), 0) > 0 THEN
        PERFORM tether.apply_commit(
            p_namespace, p_run_id, v_queue, o_now, p_lease,
            NULL, NULL, NULL, NULL, NULL, NULL,
            p_timer_steps, p_timer_fire_at, p_cancel_timers, NULL, NULL, NULL);
    END IF;
END $$;
