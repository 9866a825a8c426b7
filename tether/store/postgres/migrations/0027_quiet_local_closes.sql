-- A close no other process waits for is not notified. Every close used to NOTIFY
-- tether_closed, and PostgreSQL hands each notification to every listening session:
-- the listener's backend wakes, reads the queue, sends it on, and the listening process
-- decodes it. When the process that wrote the close also holds the run's only waiter
-- (a client beside its own worker, as in `execute()`), it hands the close to that
-- waiter itself (the store's _closing) and the notification reaches nobody who needs it:
-- W2 (start, three steps, result) took 5-9% less time without it.
--
-- Waiters are of two kinds. A start watches its run's close from its write on (the
-- start watch): that waiter lives in the starting process and is not recorded here. Any
-- other wait (a handle's result() on a run started elsewhere or earlier, an update's
-- outcome, the next run of a chain) first sets runs.awaited, under the run's row lock:
-- either it sets the flag before a close takes the lock (the close then sees the flag),
-- or it waits for that close to commit and finds the run closed.
--
-- A commit that closes a run says whether its process has a waiter for the run
-- (p_local_close). The close is then not notified unless runs.awaited is set: a start
-- watch elsewhere would mean the closer has no local waiter, so it notifies, and every
-- other waiter, wherever it is, has set the flag. Every other writer of a close passes
-- no flag and notifies, as before.
ALTER TABLE tether.runs ADD COLUMN awaited boolean NOT NULL DEFAULT false;

CREATE FUNCTION tether.advance_after_activity(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_expected_seq bigint, p_ts float8, p_lease float8,
    p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    p_local_close boolean,
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
    v_awaited boolean;
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
        RETURNING last_seq, awaited INTO o_last_seq, v_awaited;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, o_last_seq - v_count + e.i, e.type, p_ts, e.attrs::json
        FROM unnest(p_event_types, p_event_attrs) WITH ORDINALITY AS e (type, attrs, i);
    o_applied := true;
    IF v_closing THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        IF v_awaited OR NOT p_local_close THEN
            PERFORM tether.notify_closed(p_namespace, p_run_id);
        END IF;
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

-- The batch functions' one-by-one path (0017) calls the old signature: it notifies.
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
) LANGUAGE sql AS $$
    SELECT * FROM tether.advance_after_activity(
        p_namespace, p_run_id, p_task_id, p_token, p_expected_seq, p_ts, p_lease,
        p_event_types, p_event_attrs, p_act_steps, p_act_names, p_act_queues, p_act_args,
        p_act_options, p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
        p_close_status, p_close_result, p_close_failure, false)
$$;
