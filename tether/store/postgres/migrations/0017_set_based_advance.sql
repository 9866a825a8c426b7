-- The activity fast path of a whole batch in a handful of statements. 0011 ran each
-- operation of a batch in a subtransaction of its own, through ten or so statements
-- (lock the run, fence the task, bump last_seq, insert events, insert the next
-- activity, notify, ...), each paying the executor's start-up and the
-- subtransaction's bookkeeping: half a millisecond per activity outcome, most of
-- PostgreSQL's time in a run of short workflows.
--
-- Here the common shape goes set-based: the run's history still ends where the
-- worker saw it, no workflow task is pending, the outcome's commit schedules
-- activities or closes the run (no timers). The batch locks its runs in its order
-- (namespace, run_id), as every batch does; deletes the fast operations' activity
-- tasks under their lease (an operation whose lease is gone is refused, TT001);
-- then writes the runs, events and next activities of all of them at once. The
-- operations of any other shape (a second outcome of the same run in the batch, a
-- history that moved on, timers) go one by one through tether.advance_after_activity
-- as before, after the fast ones, which is the order the batch lists them in or one
-- that a batch could have had. If a set statement fails, the fast part rolls back
-- as a whole and every operation goes one by one: the results are those of 0011.
-- Same signature and results as in 0011.

CREATE TYPE tether.advance_result AS (
    o_state            text,
    o_message          text,
    o_constraint       text,
    o_applied          boolean,
    o_now              float8,
    o_activity_steps   integer[],
    o_activity_ids     bigint[],
    o_last_seq         bigint
);

CREATE OR REPLACE FUNCTION tether.advance_after_activities(p_ops tether.advance_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_applied boolean, o_now float8, o_activity_steps integer[],
               o_activity_ids bigint[], o_last_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.advance_op;
    v_now float8 := tether.epoch();
    v_fast bigint[] := '{}';
    v_lost bigint[] := '{}';
    v_done tether.advance_result[] := '{}';
    v_row record;
    v_i integer := 0;
BEGIN
    BEGIN
        PERFORM 1 FROM tether.runs r
            WHERE (r.namespace, r.run_id) IN (SELECT o.namespace, o.run_id FROM unnest(p_ops) o)
            ORDER BY r.namespace, r.run_id
            FOR UPDATE OF r;
        WITH ops AS (
            SELECT o.*, min(o.ordinality) OVER (PARTITION BY o.namespace, o.run_id) AS first
            FROM unnest(p_ops) WITH ORDINALITY AS o
        ), candidates AS (
            SELECT ops.ordinality AS i, ops.namespace, ops.task_id, ops.token FROM ops
            JOIN tether.runs r ON r.namespace = ops.namespace AND r.run_id = ops.run_id
            WHERE ops.ordinality = ops.first AND r.last_seq = ops.expected_seq
              AND coalesce(cardinality(ops.timer_steps), 0) = 0
              AND coalesce(cardinality(ops.cancel_timers), 0) = 0
              AND (ops.close_status IS NULL OR coalesce(cardinality(ops.act_steps), 0) = 0)
              AND NOT EXISTS (
                  SELECT 1 FROM tether.tasks t
                  WHERE t.namespace = ops.namespace AND t.run_id = ops.run_id
                    AND t.kind = 'workflow')
        ), gone AS (
            DELETE FROM tether.tasks t USING candidates c
            WHERE t.id = c.task_id AND t.namespace = c.namespace AND t.kind = 'activity'
              AND t.token = c.token AND t.owner IS NOT NULL AND t.visible_at > v_now
            RETURNING c.i
        )
        SELECT coalesce(array_agg(c.i) FILTER (WHERE g.i IS NOT NULL), '{}'),
               coalesce(array_agg(c.i) FILTER (WHERE g.i IS NULL), '{}')
            INTO v_fast, v_lost
            FROM candidates c LEFT JOIN gone g ON g.i = c.i;

        IF cardinality(v_fast) > 0 THEN
            -- History: last_seq and the close in one row version per run, then the events.
            FOR v_row IN
                WITH fast AS (
                    SELECT o.* FROM unnest(p_ops) WITH ORDINALITY AS o
                    WHERE o.ordinality = ANY (v_fast)
                ), moved AS (
                    UPDATE tether.runs r
                    SET last_seq = r.last_seq + coalesce(cardinality(f.event_types), 0),
                        status = coalesce(f.close_status, r.status),
                        result = CASE WHEN f.close_status IS NULL THEN r.result
                                      ELSE f.close_result::json END,
                        failure = CASE WHEN f.close_status IS NULL THEN r.failure
                                       ELSE f.close_failure::json END,
                        closed_at = CASE WHEN f.close_status IS NULL THEN r.closed_at
                                         ELSE v_now END
                    FROM fast f
                    WHERE r.namespace = f.namespace AND r.run_id = f.run_id
                    RETURNING f.ordinality::integer AS i, r.last_seq
                ), appended AS (
                    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT f.namespace, f.run_id,
                           m.last_seq - cardinality(f.event_types) + e.n, e.type, f.ts,
                           e.attrs::json
                    FROM moved m JOIN fast f ON f.ordinality = m.i
                    CROSS JOIN LATERAL unnest(f.event_types, f.event_attrs)
                        WITH ORDINALITY AS e (type, attrs, n)
                ), scheduled AS (
                    INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step,
                                              visible_at, owner, token, scheduled_at, name,
                                              args, options)
                    SELECT f.namespace, f.run_id, 'activity', a.queue, a.step,
                           CASE WHEN a.owner IS NULL THEN v_now ELSE v_now + f.lease END,
                           a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                           v_now, a.name, a.args::json, a.options::json
                    FROM fast f
                    CROSS JOIN LATERAL unnest(f.act_steps, f.act_names, f.act_queues,
                                              f.act_args, f.act_options, f.act_owners)
                        AS a (step, name, queue, args, options, owner)
                    WHERE f.close_status IS NULL
                    RETURNING namespace, run_id, step, id
                )
                SELECT m.i, m.last_seq, s.steps, s.ids
                FROM moved m JOIN fast f ON f.ordinality = m.i
                LEFT JOIN (
                    SELECT sc.namespace, sc.run_id, array_agg(sc.step) AS steps,
                           array_agg(sc.id) AS ids
                    FROM scheduled sc GROUP BY sc.namespace, sc.run_id
                ) s ON s.namespace = f.namespace AND s.run_id = f.run_id
            LOOP
                v_done[v_row.i] := ROW(NULL, NULL, NULL, true, v_now, v_row.steps, v_row.ids,
                                       v_row.last_seq)::tether.advance_result;
            END LOOP;

            -- A closed run keeps no task; waiters hear of it.
            DELETE FROM tether.tasks t USING unnest(p_ops) WITH ORDINALITY AS o
                WHERE o.ordinality = ANY (v_fast) AND o.close_status IS NOT NULL
                  AND t.namespace = o.namespace AND t.run_id = o.run_id;
            PERFORM tether.notify_closed(o.namespace, o.run_id)
                FROM unnest(p_ops) WITH ORDINALITY AS o
                WHERE o.ordinality = ANY (v_fast) AND o.close_status IS NOT NULL;
            PERFORM tether.notify_work(q.namespace, q.queue) FROM (
                SELECT DISTINCT o.namespace, a.queue
                FROM unnest(p_ops) WITH ORDINALITY AS o
                CROSS JOIN LATERAL unnest(o.act_queues, o.act_owners) AS a (queue, owner)
                WHERE o.ordinality = ANY (v_fast) AND o.close_status IS NULL
                  AND a.owner IS NULL
            ) AS q;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        -- Whatever the set statements met, one by one reports it where it belongs.
        RAISE LOG 'tether: advance_after_activities goes one by one: % (SQLSTATE %)',
            SQLERRM, SQLSTATE;
        v_fast := '{}';
        v_lost := '{}';
        v_done := '{}';
    END;

    FOREACH v IN ARRAY p_ops LOOP
        v_i := v_i + 1;
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_applied := NULL; o_now := NULL; o_activity_steps := NULL; o_activity_ids := NULL;
        o_last_seq := NULL;
        IF v_i = ANY (v_fast) THEN
            o_applied := true;
            o_now := v_now;
            o_activity_steps := v_done[v_i].o_activity_steps;
            o_activity_ids := v_done[v_i].o_activity_ids;
            o_last_seq := v_done[v_i].o_last_seq;
        ELSIF v_i = ANY (v_lost) THEN
            o_state := 'TT001';
            o_message := 'lease lost';
            RAISE LOG 'tether refused advance_after_activity(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        ELSE
            BEGIN
                SELECT a.o_applied, a.o_now, a.o_activity_steps, a.o_activity_ids,
                       a.o_last_seq
                    INTO o_applied, o_now, o_activity_steps, o_activity_ids, o_last_seq
                    FROM tether.advance_after_activity(
                        v.namespace, v.run_id, v.task_id, v.token, v.expected_seq, v.ts,
                        v.lease, v.event_types, v.event_attrs,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS a;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE,
                                        o_message = MESSAGE_TEXT,
                                        o_constraint = CONSTRAINT_NAME;
                RAISE LOG 'tether refused advance_after_activity(%, %): % (SQLSTATE %)',
                    v.namespace, v.run_id, o_message, o_state;
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
