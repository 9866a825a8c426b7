-- The batches of 0011 in a handful of statements each. 0011 ran every operation of a
-- batch in a subtransaction of its own, through ten or so statements (lock the run,
-- fence the task, bump last_seq, insert the events, insert the next activity,
-- notify, ...), each paying the executor's start-up and the subtransaction's
-- bookkeeping: about half a millisecond per operation, most of PostgreSQL's time in a
-- run of short workflows.
--
-- Here the common shape goes set-based: a start (a new workflow id), a workflow task
-- completion or an activity outcome whose commit schedules activities or closes the
-- run (no timers, not both), at most one operation per run in the batch. Each batch
-- locks its runs in the batch's order (namespace, run_id), as every batch does, and
-- fences its tasks with one DELETE under their leases; then tether.write_commits
-- writes the runs, events and next activities of all of them at once. An operation
-- of any other shape, or whose fence did not hold, goes one by one through the 0011
-- function after the set-based ones: that is either the order the batch lists them in
-- or one a batch could have had (operations on different runs commute). If a set
-- statement fails (a race with another transaction, a trigger's refusal), the
-- set-based part rolls back as a whole and every operation goes one by one, so the
-- results are always those of 0011. Same signatures and results as in 0011.
--
-- Plans: every statement here joins a batch (at most 60 operations) to big tables by
-- their keys, and only nested loops over index lookups keep its cost the batch's, not
-- the tables'. The planner sees a batch's size only roughly and a table's size as of
-- its last ANALYZE (a new database's runs table looks empty for thousands of rows), and
-- then chose a sequential scan of runs for every batch. So these functions turn the
-- other plans off for their own statements, and JIT compilation too: the cost the
-- planner adds to a plan it was told to avoid (a sort no index can spare) would
-- otherwise cross jit_above_cost and compile every statement, hundreds of ms each.
--
-- Small batches: for one or two operations, the set statements' fixed cost (a dozen
-- statements whatever the batch's size) is more than the one-by-one path's, which
-- is what an idle worker's every write is: they go one by one.

-- The history and commands of commits whose run is locked and fenced: one row version
-- per run (last_seq and the close), the events, the activities it schedules; then a
-- closed run's tasks go and the waiters hear. One row per operation, in p_ops' order.
-- (expected_seq and task_id/token are ignored here: the caller checked them.)
CREATE FUNCTION tether.write_commits(p_ops tether.advance_op[], p_now float8)
RETURNS TABLE (o_i integer, o_last_seq bigint, o_activity_steps integer[],
               o_activity_ids bigint[])
LANGUAGE plpgsql
-- See "Plans" above.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
BEGIN
    RETURN QUERY
        WITH ops AS (
            SELECT o.*, o.ordinality::integer AS i FROM unnest(p_ops) WITH ORDINALITY AS o
        ), moved AS (
            UPDATE tether.runs r
            SET last_seq = r.last_seq + coalesce(cardinality(o.event_types), 0),
                status = coalesce(o.close_status, r.status),
                result = CASE WHEN o.close_status IS NULL THEN r.result
                              ELSE o.close_result::json END,
                failure = CASE WHEN o.close_status IS NULL THEN r.failure
                               ELSE o.close_failure::json END,
                closed_at = CASE WHEN o.close_status IS NULL THEN r.closed_at ELSE p_now END
            FROM ops o
            WHERE r.namespace = o.namespace AND r.run_id = o.run_id
            RETURNING o.i, r.last_seq
        ), appended AS (
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT o.namespace, o.run_id, m.last_seq - cardinality(o.event_types) + e.n,
                   e.type, o.ts, e.attrs::json
            FROM moved m JOIN ops o ON o.i = m.i
            CROSS JOIN LATERAL unnest(o.event_types, o.event_attrs)
                WITH ORDINALITY AS e (type, attrs, n)
        ), scheduled AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options)
            SELECT o.namespace, o.run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN p_now ELSE p_now + o.lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   p_now, a.name, a.args::json, a.options::json
            FROM ops o
            CROSS JOIN LATERAL unnest(o.act_steps, o.act_names, o.act_queues, o.act_args,
                                      o.act_options, o.act_owners)
                AS a (step, name, queue, args, options, owner)
            WHERE o.close_status IS NULL
            RETURNING namespace, run_id, step, id
        )
        SELECT m.i, m.last_seq, s.steps, s.ids
        FROM moved m JOIN ops o ON o.i = m.i
        LEFT JOIN (
            SELECT sc.namespace, sc.run_id, array_agg(sc.step) AS steps,
                   array_agg(sc.id) AS ids
            FROM scheduled sc GROUP BY sc.namespace, sc.run_id
        ) s ON s.namespace = o.namespace AND s.run_id = o.run_id
        ORDER BY m.i;
    DELETE FROM tether.tasks t USING unnest(p_ops) AS o
        WHERE o.close_status IS NOT NULL AND t.namespace = o.namespace AND t.run_id = o.run_id;
    PERFORM tether.notify_closed(o.namespace, o.run_id)
        FROM unnest(p_ops) AS o WHERE o.close_status IS NOT NULL;
    PERFORM tether.notify_work(q.namespace, q.queue) FROM (
        SELECT DISTINCT o.namespace, a.queue
        FROM unnest(p_ops) AS o
        CROSS JOIN LATERAL unnest(o.act_queues, o.act_owners) AS a (queue, owner)
        WHERE o.close_status IS NULL AND a.owner IS NULL
    ) AS q;
END $$;

-- Whether a commit has the shape write_commits takes.
CREATE FUNCTION tether.set_based(
    p_timer_steps integer[], p_cancel_timers integer[], p_act_steps integer[],
    p_close_status text
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(cardinality(p_timer_steps), 0) = 0
       AND coalesce(cardinality(p_cancel_timers), 0) = 0
       AND (p_close_status IS NULL OR coalesce(cardinality(p_act_steps), 0) = 0)
$$;

-- The results of an operation written by write_commits, kept until its turn in the
-- batch's rows.
CREATE TYPE tether.written AS (
    last_seq         bigint,
    activity_steps   integer[],
    activity_ids     bigint[]
);

CREATE OR REPLACE FUNCTION tether.advance_after_activities(p_ops tether.advance_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_applied boolean, o_now float8, o_activity_steps integer[],
               o_activity_ids bigint[], o_last_seq bigint)
LANGUAGE plpgsql
-- See "Plans" above.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v tether.advance_op;
    v_now float8 := tether.epoch();
    v_fast integer[] := '{}';
    v_lost integer[] := '{}';
    v_done tether.written[] := '{}';
    v_row record;
    v_i integer := 0;
BEGIN
    IF cardinality(p_ops) > 2 THEN  -- see "Small batches" above
        BEGIN
            PERFORM 1 FROM tether.runs r
                JOIN (SELECT DISTINCT o.namespace, o.run_id FROM unnest(p_ops) AS o) AS k
                  ON r.namespace = k.namespace AND r.run_id = k.run_id
                ORDER BY r.namespace, r.run_id
                FOR UPDATE OF r;
            -- The first outcome of each run, if the run's history still ends where the
            -- worker saw it and no workflow task is pending; its activity task goes under
            -- its lease, or the outcome is refused.
            WITH ops AS (
                SELECT o.*, o.ordinality::integer AS i,
                       min(o.ordinality) OVER (PARTITION BY o.namespace, o.run_id) AS first
                FROM unnest(p_ops) WITH ORDINALITY AS o
            ), candidates AS (
                SELECT ops.i, ops.namespace, ops.task_id, ops.token FROM ops
                JOIN tether.runs r ON r.namespace = ops.namespace AND r.run_id = ops.run_id
                WHERE ops.ordinality = ops.first AND r.last_seq = ops.expected_seq
                  AND tether.set_based(ops.timer_steps, ops.cancel_timers, ops.act_steps,
                                       ops.close_status)
                  AND NOT EXISTS (
                      SELECT 1 FROM tether.tasks t
                      WHERE t.namespace = ops.namespace AND t.run_id = ops.run_id
                        AND t.kind = 'workflow')
            ), fenced AS (
                DELETE FROM tether.tasks t USING candidates c
                WHERE t.id = c.task_id AND t.namespace = c.namespace AND t.kind = 'activity'
                  AND t.token = c.token AND t.owner IS NOT NULL AND t.visible_at > v_now
                RETURNING c.i
            )
            SELECT coalesce(array_agg(c.i ORDER BY c.i) FILTER (WHERE f.i IS NOT NULL), '{}'),
                   coalesce(array_agg(c.i) FILTER (WHERE f.i IS NULL), '{}')
                INTO v_fast, v_lost
                FROM candidates c LEFT JOIN fenced f ON f.i = c.i;
            IF cardinality(v_fast) > 0 THEN
                FOR v_row IN
                    SELECT * FROM tether.write_commits(
                        ARRAY(SELECT p_ops[i] FROM unnest(v_fast) AS i ORDER BY i), v_now)
                LOOP
                    v_done[v_fast[v_row.o_i]] := ROW(v_row.o_last_seq, v_row.o_activity_steps,
                                                     v_row.o_activity_ids)::tether.written;
                END LOOP;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'tether: advance_after_activities goes one by one: % (SQLSTATE %)',
                SQLERRM, SQLSTATE;
            v_fast := '{}';
            v_lost := '{}';
            v_done := '{}';
        END;
    END IF;

    FOREACH v IN ARRAY p_ops LOOP
        v_i := v_i + 1;
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_applied := NULL; o_now := NULL; o_activity_steps := NULL; o_activity_ids := NULL;
        o_last_seq := NULL;
        IF v_i = ANY (v_fast) THEN
            o_applied := true;
            o_now := v_now;
            o_activity_steps := v_done[v_i].activity_steps;
            o_activity_ids := v_done[v_i].activity_ids;
            o_last_seq := v_done[v_i].last_seq;
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

CREATE OR REPLACE FUNCTION tether.complete_workflow_tasks(p_ops tether.complete_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql
-- See "Plans" above.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v tether.complete_op;
    v_now float8 := tether.epoch();
    v_fast integer[] := '{}';
    v_done tether.written[] := '{}';
    v_row record;
    v_i integer := 0;
BEGIN
    IF cardinality(p_ops) > 2 THEN  -- see "Small batches" above
        BEGIN
            PERFORM 1 FROM tether.runs r
                JOIN (SELECT DISTINCT o.namespace, o.run_id FROM unnest(p_ops) AS o) AS k
                  ON r.namespace = k.namespace AND r.run_id = k.run_id
                ORDER BY r.namespace, r.run_id
                FOR UPDATE OF r;
            -- The first completion of each run whose task is still leased and clean (no
            -- input came in while it ran); the others (a dirty task runs again under a new
            -- token, a lost lease is refused) go one by one.
            WITH ops AS (
                SELECT o.*, o.ordinality::integer AS i,
                       min(o.ordinality) OVER (PARTITION BY o.namespace, o.run_id) AS first
                FROM unnest(p_ops) WITH ORDINALITY AS o
            ), fenced AS (
                DELETE FROM tether.tasks t USING ops o
                WHERE o.ordinality = o.first
                  AND tether.set_based(o.timer_steps, o.cancel_timers, o.act_steps,
                                       o.close_status)
                  AND t.id = o.task_id AND t.namespace = o.namespace AND t.kind = 'workflow'
                  AND t.token = o.token AND t.owner IS NOT NULL AND t.visible_at > v_now
                  AND NOT t.dirty
                RETURNING o.i
            )
            SELECT coalesce(array_agg(f.i ORDER BY f.i), '{}') INTO v_fast FROM fenced f;
            IF cardinality(v_fast) > 0 THEN
                FOR v_row IN
                    SELECT * FROM tether.write_commits(
                        ARRAY(SELECT ROW(o.namespace, o.run_id, o.task_id, o.token, NULL, v_now,
                                         o.lease, o.event_types, o.event_attrs, o.act_steps,
                                         o.act_names, o.act_queues, o.act_args, o.act_options,
                                         o.act_owners, o.timer_steps, o.timer_fire_at,
                                         o.cancel_timers, o.close_status, o.close_result,
                                         o.close_failure)::tether.advance_op
                              FROM unnest(p_ops) WITH ORDINALITY AS o
                              WHERE o.ordinality = ANY (v_fast) ORDER BY o.ordinality),
                        v_now)
                LOOP
                    v_done[v_fast[v_row.o_i]] := ROW(v_row.o_last_seq, v_row.o_activity_steps,
                                                     v_row.o_activity_ids)::tether.written;
                END LOOP;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'tether: complete_workflow_tasks goes one by one: % (SQLSTATE %)',
                SQLERRM, SQLSTATE;
            v_fast := '{}';
            v_done := '{}';
        END;
    END IF;

    FOREACH v IN ARRAY p_ops LOOP
        v_i := v_i + 1;
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_now := NULL; o_activity_steps := NULL; o_activity_ids := NULL;
        o_next_token := NULL; o_last_seq := NULL;
        IF v_i = ANY (v_fast) THEN
            o_now := v_now;
            o_activity_steps := v_done[v_i].activity_steps;
            o_activity_ids := v_done[v_i].activity_ids;
            o_last_seq := v_done[v_i].last_seq;
        ELSE
            BEGIN
                SELECT c.o_now, c.o_activity_steps, c.o_activity_ids, c.o_next_token,
                       c.o_last_seq
                    INTO o_now, o_activity_steps, o_activity_ids, o_next_token, o_last_seq
                    FROM tether.complete_workflow_task(
                        v.namespace, v.run_id, v.task_id, v.token, v.lease,
                        v.event_types, v.event_attrs,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS c;
            EXCEPTION WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE,
                                        o_message = MESSAGE_TEXT,
                                        o_constraint = CONSTRAINT_NAME;
                RAISE LOG 'tether refused complete_workflow_task(%, %): % (SQLSTATE %)',
                    v.namespace, v.run_id, o_message, o_state;
            END;
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;

-- Starts: the new runs whose workflow id is free (first of its id in the batch, no
-- running run holds it, the namespace exists and is not being deleted) go set-based;
-- the others go one by one and are refused there with the error a single start gets.
CREATE OR REPLACE FUNCTION tether.start_runs(p_ops tether.start_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_created_at float8, o_task_id bigint,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql
-- See "Plans" above.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v tether.start_op;
    v_now float8 := tether.epoch();
    v_count integer;
    v_fast integer[] := '{}';
    v_executed integer[] := '{}';
    v_done tether.written[] := '{}';
    v_tasks bigint[] := '{}';
    v_row record;
    v_i integer := 0;
BEGIN
    IF cardinality(p_ops) > 2 THEN  -- see "Small batches" above
        BEGIN
            -- The unique index on running workflow ids decides which starts are new.
            WITH ops AS (
                SELECT o.*, o.ordinality::integer AS i,
                       min(o.ordinality) OVER (PARTITION BY o.namespace, o.workflow_id) AS first
                FROM unnest(p_ops) WITH ORDINALITY AS o
            ), fresh AS (
                INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type,
                                         task_queue, status, created_at, last_seq)
                SELECT o.namespace, o.run_id, o.workflow_id, o.workflow_type, o.task_queue,
                       'running', coalesce(o.created_at, v_now), 1
                FROM ops o
                WHERE o.ordinality = o.first
                  AND (NOT coalesce(o.executed, false)
                       OR tether.set_based(o.timer_steps, o.cancel_timers, o.act_steps,
                                           o.close_status))
                  AND EXISTS (SELECT 1 FROM tether.namespaces n
                              WHERE n.name = o.namespace AND n.deleting_since IS NULL)
                ORDER BY o.namespace, o.run_id
                ON CONFLICT (namespace, workflow_id) WHERE status = 'running' DO NOTHING
                RETURNING namespace, run_id
            )
            SELECT coalesce(array_agg(o.i ORDER BY o.i), '{}'),
                   coalesce(array_agg(o.i ORDER BY o.i) FILTER (WHERE o.executed), '{}')
                INTO v_fast, v_executed
                FROM fresh f JOIN ops o ON o.namespace = f.namespace AND o.run_id = f.run_id;
            IF cardinality(v_fast) > 0 THEN
                INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT o.namespace, o.run_id, 1, 'WorkflowStarted',
                           coalesce(o.created_at, v_now),
                           o.started::json
                    FROM unnest(p_ops) WITH ORDINALITY AS o WHERE o.ordinality = ANY (v_fast);
                -- A task for each start not already run: ready for any worker, or leased to
                -- the starting process's worker; the lease runs on the database clock.
                FOR v_row IN
                    WITH queued AS (
                        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                                  scheduled_at, owner, token)
                        SELECT o.namespace, o.run_id, 'workflow', o.task_queue,
                               CASE WHEN o.owner IS NULL THEN v_now ELSE v_now + o.lease END,
                               coalesce(o.created_at, v_now), o.owner,
                               CASE WHEN o.owner IS NULL THEN 0 ELSE 1 END
                        FROM unnest(p_ops) WITH ORDINALITY AS o
                        WHERE o.ordinality = ANY (v_fast) AND NOT coalesce(o.executed, false)
                        RETURNING namespace, run_id, id
                    )
                    SELECT o.ordinality::integer AS i, q.id
                    FROM queued q JOIN unnest(p_ops) WITH ORDINALITY AS o
                      ON o.namespace = q.namespace AND o.run_id = q.run_id
                LOOP
                    v_tasks[v_row.i] := v_row.id;
                END LOOP;
                PERFORM tether.notify_work(q.namespace, q.task_queue) FROM (
                    SELECT DISTINCT o.namespace, o.task_queue
                    FROM unnest(p_ops) WITH ORDINALITY AS o
                    WHERE o.ordinality = ANY (v_fast) AND NOT coalesce(o.executed, false)
                      AND o.owner IS NULL
                ) AS q;
                -- A start already run: its first task's commit, as if completed at once.
                IF cardinality(v_executed) > 0 THEN
                    FOR v_row IN
                        SELECT * FROM tether.write_commits(
                            ARRAY(SELECT ROW(o.namespace, o.run_id, NULL, NULL, NULL, v_now,
                                             o.lease, o.event_types, o.event_attrs, o.act_steps,
                                             o.act_names, o.act_queues, o.act_args, o.act_options,
                                             o.act_owners, o.timer_steps, o.timer_fire_at,
                                             o.cancel_timers, o.close_status, o.close_result,
                                             o.close_failure)::tether.advance_op
                                  FROM unnest(p_ops) WITH ORDINALITY AS o
                                  WHERE o.ordinality = ANY (v_executed) ORDER BY o.ordinality),
                            v_now)
                    LOOP
                        v_done[v_executed[v_row.o_i]] := ROW(
                            v_row.o_last_seq, v_row.o_activity_steps, v_row.o_activity_ids
                        )::tether.written;
                    END LOOP;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'tether: start_runs goes one by one: % (SQLSTATE %)', SQLERRM, SQLSTATE;
            v_fast := '{}';
            v_done := '{}';
            v_tasks := '{}';
        END;
    END IF;

    FOREACH v IN ARRAY p_ops LOOP
        v_i := v_i + 1;
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_created_at := NULL; o_task_id := NULL; o_now := NULL; o_activity_steps := NULL;
        o_activity_ids := NULL; o_next_token := NULL; o_last_seq := NULL;
        IF v_i = ANY (v_fast) THEN
            o_created_at := coalesce(v.created_at, v_now);
            IF v.executed THEN
                o_now := v_now;
                o_activity_steps := v_done[v_i].activity_steps;
                o_activity_ids := v_done[v_i].activity_ids;
                o_last_seq := v_done[v_i].last_seq;
            ELSE
                o_task_id := v_tasks[v_i];
                o_last_seq := 1;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            o_created_at := coalesce(v.created_at, v_now);
            v_count := CASE WHEN v.executed
                            THEN coalesce(array_length(v.event_types, 1), 0) ELSE 0 END;
            o_last_seq := 1 + v_count;
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq)
                VALUES (v.namespace, v.run_id, v.workflow_id, v.workflow_type, v.task_queue,
                        'running', o_created_at, o_last_seq);
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                VALUES (v.namespace, v.run_id, 1, 'WorkflowStarted', o_created_at,
                        v.started::json);
            IF v.executed THEN
                o_now := v_now;
                INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT v.namespace, v.run_id, 1 + e.i, e.type, v_now, e.attrs::json
                    FROM unnest(v.event_types, v.event_attrs) WITH ORDINALITY AS e (type, attrs, i);
                SELECT c.o_activity_steps, c.o_activity_ids
                    INTO o_activity_steps, o_activity_ids
                    FROM tether.apply_commit(
                        v.namespace, v.run_id, v.task_queue, v_now, v.lease,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS c;
            ELSE
                INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                          scheduled_at, owner, token)
                    VALUES (v.namespace, v.run_id, 'workflow', v.task_queue,
                            CASE WHEN v.owner IS NULL THEN v_now ELSE v_now + v.lease END,
                            o_created_at, v.owner,
                            CASE WHEN v.owner IS NULL THEN 0 ELSE 1 END)
                    RETURNING id INTO o_task_id;
                IF v.owner IS NULL THEN
                    PERFORM tether.notify_work(v.namespace, v.task_queue);
                END IF;
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
