-- Claims keep their plans. A worker's claim cycle (the workflow claim, the activity
-- claim) was planned anew at every call: claim_ready and claim_workflow_tasks_read by
-- force_custom_plan or by PL/pgSQL's own choice of custom plans, ready_tasks and
-- usable_namespaces because PostgreSQL 15 keeps no plan of a LANGUAGE sql function
-- from one statement to the next. Planning was most of a claim's cost: an activity
-- claim that found nothing took 0.43 ms of the server over a `SELECT 1`, a workflow
-- claim 0.65 ms; with the plans kept, 0.1 ms each. A worker process that waits for work
-- runs such a cycle for every task it is handed (W2 with one worker process: about
-- half of the server's CPU per workflow went to claims).
--
-- Each plan is now the generic one, made once per connection. None depends on the
-- values: the walk of tasks_ready in (priority, pass, age) order is the only plan
-- ready_tasks has with sorts off, which is why 0018 moved it there; and the statements
-- around it join to the claimed rows by key, with sequential scans and hash and merge
-- joins off. (0013's custom plans were for a LIMIT the planner could not see; since
-- 0018 the walk's order no longer depends on it.) A generic plan also cannot use the
-- partial index of workflow tasks for a kind it does not know: the plan 0018 ruled out.

CREATE OR REPLACE FUNCTION tether.ready_tasks(
    p_kind text, p_namespace text, p_queues text[], p_limit integer, p_now float8
) RETURNS TABLE (id bigint, lost boolean, priority smallint, pass float8,
                 visible_at float8)
LANGUAGE plpgsql ROWS 10
SET enable_sort = off SET jit = off SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY
    SELECT c.id, c.lost, c.priority, c.pass, c.visible_at
    FROM unnest(p_queues) AS q (queue)
    CROSS JOIN LATERAL (
        SELECT t.id, t.owner IS NOT NULL AS lost, t.priority, t.pass, t.visible_at
        FROM tether.tasks t
        WHERE t.kind = p_kind AND t.namespace = p_namespace AND t.task_queue = q.queue
          AND t.visible_at <= p_now
        ORDER BY t.priority, t.pass, t.visible_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) AS c;
END $$;

CREATE OR REPLACE FUNCTION tether.usable_namespaces(p_namespaces text[]) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN ARRAY(SELECT n FROM unnest(p_namespaces) AS n WHERE NOT EXISTS (
        SELECT 1 FROM tether.namespaces s WHERE s.name = n AND s.deleting_since IS NOT NULL));
END $$;

ALTER FUNCTION tether.claim_ready(text, text, text[], text[], integer, float8, float8)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tether.claim_workflow_tasks_read(text, text[], text[], integer, float8, integer)
    SET plan_cache_mode = force_generic_plan;
