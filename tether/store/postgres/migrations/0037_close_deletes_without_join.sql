-- A batch's write of activity outcomes ended by deleting the tasks left to the runs it
-- closed with a join of tasks and the batch's operations (write_commits). The tasks
-- table's statistics are always tiny, whenever they are taken: its rows live seconds, a
-- few are there at any moment however many pass through. On such statistics the join
-- went with tasks as the outer loop, reading every task (live and dead index entries)
-- and the whole batch again for each: 100-120 ms a batch of sixty, in every batch,
-- closing runs or not, from the moment tasks was analyzed. One W1 run in ten went at
-- 700-960 workflows/s instead of 1,100-1,200 with PostgreSQL at 95-120% of a core
-- (auto_explain of the slow batches).
--
-- The delete is now no join: the closed runs' namespaces and ids go as two arrays, which
-- an index of tasks that starts with the namespace (and the run id) takes as its bounds,
-- and the exact pairs are checked on the few rows found. A batch that closes no run
-- finds nothing to read. Whatever the statistics say, it reads at most the namespaces'
-- tasks once.

-- 0031's, with that delete.
CREATE OR REPLACE FUNCTION tether.write_commits(p_ops tether.advance_op[], p_now float8)
RETURNS TABLE (o_i integer, o_last_seq bigint, o_activity_steps integer[],
               o_activity_ids bigint[])
LANGUAGE plpgsql
-- See 0017, "Plans".
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
            RETURNING o.i, r.last_seq, r.placement
        ), appended AS (
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT o.namespace, o.run_id, m.last_seq - cardinality(o.event_types) + e.n,
                   e.type, o.ts, e.attrs::json
            FROM moved m JOIN ops o ON o.i = m.i
            CROSS JOIN LATERAL unnest(o.event_types, o.event_attrs)
                WITH ORDINALITY AS e (type, attrs, n)
        ), scheduled AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options,
                                      priority)
            SELECT o.namespace, o.run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN p_now ELSE p_now + o.lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   p_now, a.name, a.args::json, a.options::json, coalesce(m.placement, 2)
            FROM ops o LEFT JOIN moved m ON m.i = o.i
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
    PERFORM tether.apply_event_effects(o.namespace, o.run_id, o.event_types, o.event_attrs)
        FROM unnest(p_ops) AS o WHERE o.event_types && ARRAY['WorkflowStarted', 'SearchAttributesUpserted'];
    -- The closed runs' other tasks. Not a join of tasks with the operations: see above.
    DELETE FROM tether.tasks t
        WHERE t.namespace = ANY (ARRAY(SELECT DISTINCT o.namespace FROM unnest(p_ops) AS o
                                       WHERE o.close_status IS NOT NULL))
          AND t.run_id = ANY (ARRAY(SELECT o.run_id FROM unnest(p_ops) AS o
                                    WHERE o.close_status IS NOT NULL))
          AND (t.namespace, t.run_id) IN (SELECT o.namespace, o.run_id FROM unnest(p_ops) AS o
                                          WHERE o.close_status IS NOT NULL);
    PERFORM tether.notify_closed(o.namespace, o.run_id)
        FROM unnest(p_ops) AS o WHERE o.close_status IS NOT NULL;
    PERFORM tether.notify_work(q.namespace, q.queue) FROM (
        SELECT DISTINCT o.namespace, a.queue
        FROM unnest(p_ops) AS o
        CROSS JOIN LATERAL unnest(o.act_queues, o.act_owners) AS a (queue, owner)
        WHERE o.close_status IS NULL AND a.owner IS NULL
    ) AS q;
END $$;
