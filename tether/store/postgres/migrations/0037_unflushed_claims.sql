-- A claim's commit no longer waits for its WAL to reach disk: the claim statements
-- (queries.py, namespaces.py) turn synchronous_commit off for their own transaction.
-- A claim only leases a task; what the lease is for (the workflow task's commit, the
-- activity's outcome) is written later, by a commit that does wait, and that flush
-- carries the claim's WAL with it. So losing a claim is what losing its worker is: the
-- task is ready again and runs again (activities run at least once). Measured with
-- one worker process apart from the client (bench/README.md, session 25): the
-- claim of a run's first workflow task 0.75-0.92 ms -> 0.40-0.64 ms.
--
-- What a lost claim must not do is hand out its fencing token twice. A claim acknowledged
-- and then lost in a crash (or a failover) leaves the task with its old token; the
-- next claim's token + 1 would be the lost one's, and the first worker's late writes
-- would then pass for the second's. So a claim's token is also at least the claim's
-- time in microseconds: a later claim gets a later token unless the database's clock
-- went back by more than the time between the two claims. Tokens still only grow.
--
-- What else a lost claim loses, and why it may: an activity's attempt count raised by
-- the claim of an expired lease (the attempt may then repeat its number), and the
-- rate-limit tokens the claim spent (0004: a namespace may then get that many claims
-- more once, after the crash).

-- 0034's, the token as above.
CREATE OR REPLACE FUNCTION tether.claim_ready(
    p_kind text, p_owner text, p_namespaces text[], p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT c.id, c.lost FROM unnest(p_namespaces) AS n (namespace)
        CROSS JOIN LATERAL tether.first_due(p_kind, n.namespace, p_queues, p_now) AS d (due)
        CROSS JOIN LATERAL tether.ready_tasks(p_kind, n.namespace, p_queues, p_limit,
                                              p_now) AS c
        ORDER BY c.priority, c.pass, c.visible_at LIMIT p_limit
    )
    UPDATE tether.tasks t
    SET owner = p_owner, visible_at = p_now + p_lease,
        token = greatest(t.token + 1, (p_now * 1000000)::bigint),
        dirty = CASE WHEN p_kind = 'workflow' THEN false ELSE t.dirty END,
        attempt = t.attempt + CASE WHEN p_kind = 'activity' AND picked.lost THEN 1 ELSE 0 END
    FROM picked, tether.runs r
    WHERE t.id = picked.id AND r.namespace = t.namespace AND r.run_id = t.run_id
    RETURNING t.id, t.namespace, t.run_id, r.workflow_id, r.workflow_type, t.task_queue,
              t.token, t.step, t.name, t.args, t.options, t.attempt, t.scheduled_at,
              t.heartbeat, t.last_failure, picked.lost;
END $$;
