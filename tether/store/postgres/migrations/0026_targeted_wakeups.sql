-- Work made ready wakes one waiting worker process, not every one (the herd). Before,
-- each NOTIFY on tether_work woke every worker process listening for the queue, and
-- every one that lost the race still ran its claim cycle: three statements for
-- nothing, per process, per task. In the benchmark's W2 with 4 worker processes a
-- workflow cost 30 transactions against 13 with one.
--
-- A worker process about to wait for work with free slots says so in its look at the
-- next due task (next_due_idle): a row per worker, keyed by the backend pid of its
-- store's LISTEN connection. notify_work takes the longest-waiting such row that
-- serves the queue (and deletes it: each idle worker is woken once) and names that
-- pid in the payload; only that process acts on it. With no idle worker registered,
-- the payload names nobody and every listener wakes, as before: this also covers a
-- worker between a claim that found nothing and its registration.
--
-- Rows can be stale: a worker that woke for another reason (a timer, a freed slot) is
-- not waiting any more. The process then has no waiter for the queue and passes the
-- notification on (it calls notify_work again); a worker that claims as many tasks as
-- it could take wakes one more idle worker (wake_idle) so that a burst spreads. A row
-- whose LISTEN connection has gone (a crashed process) is skipped; rows older than the
-- workers' longest idle wait are ignored, and removed after a minute.
--
-- UNLOGGED: the rows describe live connections; a server crash ends those anyway.
CREATE UNLOGGED TABLE tether.idle_listeners (
    listener integer NOT NULL,
    worker text NOT NULL,
    namespaces text[] NOT NULL,
    queues text[] NOT NULL,
    since float8 NOT NULL,
    PRIMARY KEY (listener, worker)
);

-- The pid of the longest-waiting live idle worker serving the queue, its row deleted;
-- NULL if there is none. A row younger than 10 s is fresh: an idle worker looks (and
-- registers again) at least every 5 s.
CREATE FUNCTION tether.take_idle_listener(p_namespace text, p_queue text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_listener integer;
    v_worker text;
BEGIN
    SELECT l.listener, l.worker INTO v_listener, v_worker FROM tether.idle_listeners l
        WHERE p_namespace = ANY (l.namespaces) AND p_queue = ANY (l.queues)
          AND l.since > tether.epoch() - 10
          AND EXISTS (SELECT 1 FROM pg_stat_get_activity(l.listener))
        ORDER BY l.since
        LIMIT 1
        FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        DELETE FROM tether.idle_listeners
            WHERE listener = v_listener AND worker = v_worker;
    END IF;
    RETURN v_listener;
END $$;

CREATE OR REPLACE FUNCTION tether.notify_work(p_namespace text, p_queue text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tether_work', json_build_array(
        p_namespace, p_queue, tether.take_idle_listener(p_namespace, p_queue))::text);
END $$;

-- Wake one more idle worker serving the queue, if there is one (nobody otherwise: the
-- busy ones claim again as their slots free).
CREATE FUNCTION tether.wake_idle(p_namespace text, p_queue text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_listener integer := tether.take_idle_listener(p_namespace, p_queue);
BEGIN
    IF v_listener IS NOT NULL THEN
        PERFORM pg_notify('tether_work',
                          json_build_array(p_namespace, p_queue, v_listener)::text);
    END IF;
END $$;

-- The earliest time a task of these namespaces and queues is due (as the plain look
-- did); with a listener, the worker is registered as idle first.
CREATE FUNCTION tether.next_due_idle(
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
    RETURN (SELECT min(t.visible_at) FROM tether.tasks t
            WHERE t.namespace = ANY ((SELECT tether.usable_namespaces(p_namespaces))::text[])
              AND t.task_queue = ANY (p_queues));
END $$;
