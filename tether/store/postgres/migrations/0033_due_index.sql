-- A worker's look at its next due task reads one index entry per namespace, queue and
-- kind. An idle worker asks when the next task of its namespaces and queues is due (a
-- timer, a retry's backoff, a lease that may expire) before it waits. That look took
-- the minimum of visible_at over every task of those queues: no index has visible_at
-- right after the namespace and queue, so it read them all. Tasks that wait are the
-- common case for agents (each activity running a model call holds a leased task for
-- its whole call): with 30,000 leased tasks the look took 5 ms of the server, at every
-- idle turn of every worker, where a claim takes 0.1 ms.
--
-- tasks_due orders the tasks of each (namespace, queue, kind) by visible_at: the look
-- is then the first entry of each. It also serves a claim's question whether anything
-- of its kind is due in a namespace (0034) and the walk of due timers (0035), which
-- tasks_timers (the same, for timers alone) served: that index goes, so a timer's row
-- has as many index entries as before and a workflow or activity task one more.

CREATE INDEX tasks_due ON tether.tasks (namespace, task_queue, kind, visible_at);
DROP INDEX tether.tasks_timers;

CREATE FUNCTION tether.next_due(p_namespaces text[], p_queues text[]) RETURNS float8
LANGUAGE plpgsql STABLE
-- See 0017, "Plans", and 0032.
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
BEGIN
    RETURN (SELECT min(d.visible_at)
            FROM unnest(tether.usable_namespaces(p_namespaces)) AS n (namespace)
            CROSS JOIN unnest(p_queues) AS q (queue)
            CROSS JOIN unnest(ARRAY['workflow', 'activity', 'timer']) AS k (kind)
            CROSS JOIN LATERAL (
                SELECT t.visible_at FROM tether.tasks t
                WHERE t.namespace = n.namespace AND t.task_queue = q.queue
                  AND t.kind = k.kind
                ORDER BY t.visible_at LIMIT 1
            ) AS d);
END $$;

-- 0026's, looking through next_due.
CREATE OR REPLACE FUNCTION tether.next_due_idle(
    p_namespaces text[], p_queues text[], p_listener integer, p_worker text
) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
BEGIN
    IF p_listener IS NOT NULL THEN
        DELETE FROM tether.idle_listeners WHERE (listener, worker) IN (
            SELECT l.listener, l.worker FROM tether.idle_listeners l
            WHERE l.since < v_now - 60 FOR UPDATE SKIP LOCKED);
        INSERT INTO tether.idle_listeners (listener, worker, namespaces, queues, since)
            VALUES (p_listener, p_worker, p_namespaces, p_queues, v_now)
            ON CONFLICT (listener, worker) DO UPDATE
            SET namespaces = EXCLUDED.namespaces, queues = EXCLUDED.queues,
                since = EXCLUDED.since;
    END IF;
    RETURN tether.next_due(p_namespaces, p_queues);
END $$;
