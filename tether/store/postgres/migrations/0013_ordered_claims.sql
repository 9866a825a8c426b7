-- Claims read their tasks in index order. "task_queue = ANY (queues)" cannot walk the
-- tasks_ready index in (priority, pass, visible_at) order on PostgreSQL 15, so every
-- claim sorted the whole ready backlog of the namespace: 11 ms per claim with 20,000
-- runs waiting, against 0.1 ms for an equality. A lateral scan per queue walks the
-- index in order and stops at the limit; the few candidates are merged after.
-- Rows a lateral scan locks beyond the final limit are released at the claim's commit.
CREATE OR REPLACE FUNCTION tether.claim_lane(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE plpgsql
-- Planned for the values of each call: with a generic plan (an unknown LIMIT), the
-- planner prefers to sort the whole backlog over walking the index.
SET plan_cache_mode = force_custom_plan AS $$
BEGIN
    RETURN QUERY
    WITH candidates AS (
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
    ), picked AS (
        SELECT id, lost FROM candidates ORDER BY priority, pass, visible_at LIMIT p_limit
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
