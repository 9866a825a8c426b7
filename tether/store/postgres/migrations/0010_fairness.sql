-- Priority and fairness keys within a namespace. Mirrors
-- store/sqlite/migrations/0010_fairness.sql, which explains the passes.
--
-- Triggers do the work, so that no writer (start, signal-with-start, children,
-- continue-as-new, retries) has to know: a WorkflowStarted event carrying "fairness"
-- records the run's place in run_fairness, and each workflow or activity task of such
-- a run takes its priority and pass as it is inserted. When a statement inserts the
-- run's first task before its event (one statement with several parts), the event's
-- trigger places that task afterwards.
ALTER TABLE tether.tasks ADD COLUMN priority smallint NOT NULL DEFAULT 2;
ALTER TABLE tether.tasks ADD COLUMN pass float8 NOT NULL DEFAULT 0;
DROP INDEX tether.tasks_ready;
CREATE INDEX tasks_ready ON tether.tasks (kind, namespace, task_queue, priority, pass, visible_at);
CREATE INDEX tasks_timers ON tether.tasks (namespace, task_queue, visible_at)
    WHERE kind = 'timer';

CREATE TABLE tether.run_fairness (
    namespace     text NOT NULL,
    run_id        text NOT NULL,
    priority      smallint NOT NULL,
    fairness_key  text,
    weight        float8 NOT NULL,
    PRIMARY KEY (namespace, run_id)
);

-- One row per (queue, kind, priority, key) with the key's last pass; key '' holds the
-- queue's clock.
CREATE TABLE tether.fair_flows (
    namespace     text NOT NULL,
    task_queue    text NOT NULL,
    kind          text NOT NULL,
    priority      smallint NOT NULL,
    fairness_key  text NOT NULL,
    last_pass     float8 NOT NULL,
    PRIMARY KEY (namespace, task_queue, kind, priority, fairness_key)
);

-- The next pass of a key: after its own last one, and not before the queue's clock,
-- which first moves up to the head of the keyed tasks waiting now.
CREATE FUNCTION tether.fair_pass(
    p_namespace text, p_queue text, p_kind text, p_priority smallint, p_key text,
    p_weight float8, p_task bigint
) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    v_head float8;
    v_clock float8;
    v_pass float8;
BEGIN
    SELECT min(t.pass) INTO v_head FROM tether.tasks t
        WHERE t.kind = p_kind AND t.namespace = p_namespace AND t.task_queue = p_queue
          AND t.priority = p_priority AND t.pass > 0 AND t.owner IS NULL
          AND t.id IS DISTINCT FROM p_task;
    SELECT c.last_pass INTO v_clock FROM tether.fair_flows c
        WHERE c.namespace = p_namespace AND c.task_queue = p_queue AND c.kind = p_kind
          AND c.priority = p_priority AND c.fairness_key = '';
    IF v_clock IS NULL THEN
        INSERT INTO tether.fair_flows VALUES
            (p_namespace, p_queue, p_kind, p_priority, '', coalesce(v_head, 0))
            ON CONFLICT DO NOTHING;
        v_clock := coalesce(v_head, 0);
    ELSIF v_head > v_clock THEN
        -- Only when the head moved on: a row lock taken by every insert would make
        -- all writers of the queue wait for each other.
        UPDATE tether.fair_flows c SET last_pass = greatest(c.last_pass, v_head)
            WHERE c.namespace = p_namespace AND c.task_queue = p_queue AND c.kind = p_kind
              AND c.priority = p_priority AND c.fairness_key = '';
        v_clock := v_head;
    END IF;
    INSERT INTO tether.fair_flows AS k VALUES
        (p_namespace, p_queue, p_kind, p_priority, p_key, v_clock + 1.0 / p_weight)
        ON CONFLICT (namespace, task_queue, kind, priority, fairness_key) DO UPDATE
        SET last_pass = greatest(k.last_pass + 1.0 / p_weight, excluded.last_pass)
        RETURNING k.last_pass INTO v_pass;
    RETURN v_pass;
END $$;

CREATE FUNCTION tether.place_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f tether.run_fairness;
BEGIN
    SELECT * INTO f FROM tether.run_fairness
        WHERE namespace = NEW.namespace AND run_id = NEW.run_id;
    IF FOUND THEN
        NEW.priority := f.priority;
        IF f.fairness_key IS NOT NULL THEN
            NEW.pass := tether.fair_pass(NEW.namespace, NEW.task_queue, NEW.kind, f.priority,
                                         f.fairness_key, f.weight, NULL);
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER tasks_place BEFORE INSERT ON tether.tasks
    FOR EACH ROW WHEN (NEW.kind <> 'timer') EXECUTE FUNCTION tether.place_task();

CREATE FUNCTION tether.record_fairness() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_fair json := NEW.attrs -> 'fairness';
    f tether.run_fairness;
BEGIN
    IF v_fair IS NULL OR json_typeof(v_fair) <> 'object' THEN
        RETURN NULL;
    END IF;
    INSERT INTO tether.run_fairness VALUES (
        NEW.namespace, NEW.run_id, coalesce((v_fair ->> 'priority')::smallint, 2),
        v_fair ->> 'key', coalesce((v_fair ->> 'weight')::float8, 1.0))
        ON CONFLICT (namespace, run_id) DO UPDATE
        SET priority = excluded.priority, fairness_key = excluded.fairness_key,
            weight = excluded.weight
        RETURNING * INTO f;
    UPDATE tether.tasks t SET priority = f.priority,
        pass = CASE WHEN f.fairness_key IS NULL THEN 0 ELSE tether.fair_pass(
            t.namespace, t.task_queue, t.kind, f.priority, f.fairness_key, f.weight, t.id) END
        WHERE t.namespace = NEW.namespace AND t.run_id = NEW.run_id AND t.kind <> 'timer';
    RETURN NULL;
END $$;

CREATE TRIGGER events_record_fairness AFTER INSERT ON tether.events
    FOR EACH ROW WHEN (NEW.type = 'WorkflowStarted' AND strpos(NEW.attrs::text, '"fairness"') > 0)
    EXECUTE FUNCTION tether.record_fairness();

-- Claims take a namespace's tasks by priority, then pass, then age.
CREATE OR REPLACE FUNCTION tether.claim_lane(
    p_kind text, p_owner text, p_namespace text, p_queues text[], p_limit integer,
    p_lease float8, p_now float8
) RETURNS SETOF tether.claimed_task LANGUAGE sql AS $$
    WITH picked AS (
        SELECT t.id, t.owner IS NOT NULL AS lost FROM tether.tasks t
        WHERE t.kind = p_kind AND t.namespace = p_namespace AND t.task_queue = ANY (p_queues)
          AND t.visible_at <= p_now
        ORDER BY t.priority, t.pass, t.visible_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE tether.tasks t
    SET owner = p_owner, visible_at = p_now + p_lease, token = t.token + 1,
        dirty = CASE WHEN p_kind = 'workflow' THEN false ELSE t.dirty END,
        attempt = t.attempt + CASE WHEN p_kind = 'activity' AND picked.lost THEN 1 ELSE 0 END
    FROM picked, tether.runs r
    WHERE t.id = picked.id AND r.namespace = t.namespace AND r.run_id = t.run_id
    RETURNING t.id, t.namespace, t.run_id, r.workflow_id, r.workflow_type, t.task_queue,
              t.token, t.step, t.name, t.args, t.options, t.attempt, t.scheduled_at,
              t.heartbeat, t.last_failure, picked.lost
$$;
