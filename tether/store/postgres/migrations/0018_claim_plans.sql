-- Claims walk tasks_ready in its order and stop at their limit (0013). But a flood
-- fills a new database's tasks table faster than autovacuum analyzes it (a minute
-- apart at best): with statistics saying the table is empty, the planner read the
-- flood's whole ready backlog through the unique index of workflow tasks and sorted
-- it, 8-30 ms per claim with 5,000 tasks ready, most of PostgreSQL's time under a
-- flood; and it joined the claimed tasks to runs by a sequential scan.
--
-- So the walk is a function of its own with sorts off: the walk of tasks_ready in
-- order is the only plan it has left. Every claim goes through it (claim_ready). (Sorts cannot be off for the whole claim: the
-- merge of the lanes' few candidates must sort, and the cost the planner adds to a
-- plan it was told to avoid hides every other difference between plans, 1% being
-- what it calls equal.) The claim itself keeps to index lookups, as the batch
-- functions of 0017 do; JIT stays off in both (that added cost would cross
-- jit_above_cost and compile the statement, hundreds of milliseconds).

CREATE FUNCTION tether.ready_tasks(
    p_kind text, p_namespace text, p_queues text[], p_limit integer, p_now float8
) RETURNS TABLE (id bigint, lost boolean, priority smallint, pass float8,
                 visible_at float8)
LANGUAGE sql ROWS 10
SET enable_sort = off SET jit = off SET plan_cache_mode = force_custom_plan AS $$
    SELECT c.id, c.lost, c.priority, c.pass, c.visible_at
    FROM unnest(p_queues) AS q (queue)
    CROSS JOIN LATERAL (
        SELECT t.id, t.owner IS NOT NULL AS lost, t.priority, t.pass, t.visible_at
        FROM tether.tasks t
        WHERE t.kind = p_kind AND t.namespace = p_namespace AND t.task_queue = q.queue
          AND t.visible_at <= p_now
        ORDER BY t.priority, t.pass, t.visible_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) AS c
$$;

-- A claim over some namespaces and queues, in one order (priority, pass, age); the
-- workers' plain claims (queries.py) and each lane of a fair claim (claim_lane).
CREATE FUNCTION tether.claim_ready(
    p_kind text, p_owner text, p_namespaces text[], p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT c.id, c.lost FROM unnest(p_namespaces) AS n (namespace)
        CROSS JOIN LATERAL tether.ready_tasks(p_kind, n.namespace, p_queues, p_limit,
                                              p_now) AS c
        ORDER BY c.priority, c.pass, c.visible_at LIMIT p_limit
    )
    UPDATE tether.tasks t
    SET owner = p_owner, visible_at = p_now + p_lease, token = t.token + 1,
        dirty = CASE WHEN p_kind = 'workflow' THEN false ELSE t.dirty END,
        attempt = t.attempt + CASE WHEN p_kind = 'activity' AND picked.lost THEN 1 ELSE 0 END
    FROM picked, tether.runs r
    WHERE t.id = picked.id AND r.namespace = t.namespace AND r.run_id = t.run_id
    RETURNING t.id, t.namespace, t.run_id, r.workflow_id, r.workflow_type, t.task_queue,
              t.token, t.step, t.name, t.args, t.options, t.attempt, t.scheduled_at,
              t.heartbeat, t.last_failure, picked.lost;
END $$;

CREATE OR REPLACE FUNCTION tether.claim_lane(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE sql AS $$
    SELECT * FROM tether.claim_ready(p_kind, p_owner, ARRAY[p_namespace], p_queues, p_limit,
                                     p_lease, p_now)
$$;
