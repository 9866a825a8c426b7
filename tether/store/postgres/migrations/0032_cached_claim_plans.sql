-- Claims keep their plans. A worker's claim cycle (the workflow claim, the activity
-- claim) was planned anew at every call: claim_ready and claim_workflow_tasks_read by
-- force_custom_plan or by PL/pgSQL's own choice of custom plans; ready_tasks,
-- usable_namespaces, usable_shares and claim_lane because PostgreSQL 15 keeps no plan
-- of a LANGUAGE sql function from one statement to the next. Planning was most of a
-- claim's cost: a plain activity claim that found nothing took 0.43 ms of the server
-- over a `SELECT 1`, a plain workflow claim 0.65 ms, a fair claim over four namespaces
-- 0.55 ms (1.2 ms with caps); with the plans kept, 0.1, 0.1, 0.28 and 0.7 ms. A worker
-- process that waits for work runs such a cycle for every task it is handed (W2 with
-- one worker process: about half of the server's CPU per workflow went to claims).
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
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    RETURN ARRAY(SELECT n FROM unnest(p_namespaces) AS n WHERE NOT EXISTS (
        SELECT 1 FROM tether.namespaces s WHERE s.name = n AND s.deleting_since IS NOT NULL));
END $$;

-- The fair claims' (0004): the same, for the shares of a claim and for each lane.
CREATE OR REPLACE FUNCTION tether.usable_shares(p_namespaces text[], p_shares integer[])
RETURNS integer[] LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    RETURN ARRAY(
        SELECT CASE WHEN EXISTS (SELECT 1 FROM tether.namespaces s
                                 WHERE s.name = u.n AND s.deleting_since IS NOT NULL)
               THEN 0 ELSE u.share END
        FROM unnest(p_namespaces, p_shares) WITH ORDINALITY AS u (n, share, i) ORDER BY u.i);
END $$;

CREATE OR REPLACE FUNCTION tether.claim_lane(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    RETURN QUERY SELECT * FROM tether.claim_ready(p_kind, p_owner, ARRAY[p_namespace],
                                                  p_queues, p_limit, p_lease, p_now);
END $$;

-- The plain claims had their joins' plans fixed already (0017, 0018); the fair claims'
-- functions (0004) get the same settings with their generic plans, so that a plan made
-- while the statistics say a table is empty stays on its indexes.
ALTER FUNCTION tether.claim_ready(text, text, text[], text[], integer, float8, float8)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tether.claim_workflow_tasks_read(text, text[], text[], integer, float8, integer)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION tether.claim_fair(text, text, text[], float8, integer, text[], integer[],
                                 integer[], float8[], text[], text[], float8[])
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
    SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off;
ALTER FUNCTION tether.claim_namespace(text, text, text, text[], integer, float8, float8,
                                      integer, float8, text[], float8[])
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
    SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off;
ALTER FUNCTION tether.limiter_tokens(text, text, text, float8, float8)
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
    SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off;
