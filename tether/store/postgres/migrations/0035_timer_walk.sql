-- Due timers are found by one walk per (namespace, queue). The look for them (every
-- 50 ms while a worker's claims keep it busy) put both lists in one scan of
-- tasks_timers, and the planner kept the queue as a filter: the scan read every timer
-- of the namespace, due or not. Agents that sleep on durable timers pile them up: with
-- 15,000 timers set for later, each look took 0.55 ms of the server to fire nothing.
-- Each walk of tasks_due (0033) now stops at the first timer not yet due; the timers
-- of all pairs are then taken in order of due time, up to the limit (a timer locked by
-- a walk but not taken is released when the look commits, as in 0013's claims).
--
-- Each taken timer's run is then locked by its key, one at a time, instead of in a
-- join with the walk: a plan made once (0032) joined runs first, whole, when its
-- statistics were older than those of tasks (57 ms a look with 30,000 runs). A timer
-- whose run is being written elsewhere (SKIP LOCKED) is left for the next look, as
-- before; neither lock ever waits, so the order of the two cannot deadlock.

-- 0001's, walking each pair and locking runs by key, with the plans of 0017 and 0032.
CREATE OR REPLACE FUNCTION tether.fire_timers(p_namespaces text[], p_queues text[], p_limit integer)
RETURNS integer LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET jit = off AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_due bigint[];
    v_fired integer := 0;
    v_timer record;
    v_ready boolean;
BEGIN
    -- SKIP LOCKED: concurrent callers fire disjoint timers.
    v_due := ARRAY(
        SELECT d.id FROM unnest(p_namespaces) AS n (namespace)
        CROSS JOIN unnest(p_queues) AS q (queue)
        CROSS JOIN LATERAL (
            SELECT t.id, t.visible_at FROM tether.tasks t
            WHERE t.kind = 'timer' AND t.namespace = n.namespace
              AND t.task_queue = q.queue AND t.visible_at <= v_now
            ORDER BY t.visible_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) AS d
        ORDER BY d.visible_at LIMIT p_limit);
    IF cardinality(v_due) = 0 THEN
        RETURN 0;
    END IF;
    FOR v_timer IN
        SELECT t.id, t.namespace, t.run_id, t.step, t.task_queue FROM tether.tasks t
        WHERE t.id = ANY (v_due)
    LOOP
        -- A run being written by someone else is left for the next round.
        PERFORM 1 FROM tether.runs r
            WHERE r.namespace = v_timer.namespace AND r.run_id = v_timer.run_id
            FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        DELETE FROM tether.tasks WHERE id = v_timer.id;
        PERFORM tether.append_events(v_timer.namespace, v_timer.run_id, ARRAY['TimerFired'],
                                     ARRAY[json_build_object('step', v_timer.step)::text], v_now);
        -- A timer lives on its run's workflow task queue.
        SELECT w.o_ready INTO v_ready FROM tether.request_workflow_task(
            v_timer.namespace, v_timer.run_id, v_timer.task_queue, v_now) AS w;
        IF v_ready THEN
            PERFORM tether.notify_work(v_timer.namespace, v_timer.task_queue);
        END IF;
        v_fired := v_fired + 1;
    END LOOP;
    RETURN v_fired;
END $$;
