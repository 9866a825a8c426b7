-- Two row triggers leave the common write: a task's placement and a close's look for
-- a parent and children. A row trigger costs each statement that fires it a call of
-- its PL/pgSQL function (and what the function reads: run_fairness, an extra relation
-- and index locked by every transaction), beyond its WHEN clause: disabling both
-- measured 7% of the backends' CPU of a W2 run and 4-5% of its p50.
--
-- Placement. A run's tasks took their priority and fairness pass from 0010's BEFORE
-- INSERT trigger, which looked the run up in run_fairness for every task. The run's row
-- now says how its tasks are placed (runs.placement: null for the default level 2 and
-- no key, a level for a run with a level and no key, -1 for a run with a fairness key,
-- whose every task needs its own pass), written where run_fairness is (set_fairness).
-- The writers of a run's next tasks read their run's row anyway: the advance,
-- apply_commit and write_commits (the batches) set the priority themselves. The
-- trigger still places any task inserted with the column's new default (-1): the
-- other writers' tasks (unchanged), and those of keyed runs.
--
-- Closes. The runs_closed trigger told a parent its child closed and applied a closing
-- run's policy to its children, and fired for every close. It now fires only for a run
-- with a parent or with children (runs.has_children, set by start_linked_runs when a
-- run starts its first children).
--
-- And the advance that does not close its run locks the run, checks its sequence and
-- moves it on in one UPDATE, then deletes the finished activity's task unless a
-- workflow task waits (that statement starts after the lock is held, so it sees every
-- task committed before): two statements less than 0030's lock, look, delete, update.
-- A declined advance (a workflow task waits) puts the sequence back; a lost lease
-- raises, which undoes the UPDATE with the rest.

ALTER TABLE tether.runs ADD COLUMN placement smallint;
ALTER TABLE tether.runs ADD COLUMN has_children boolean NOT NULL DEFAULT false;
UPDATE tether.runs r
    SET placement = CASE WHEN f.fairness_key IS NULL THEN f.priority ELSE -1 END
    FROM tether.run_fairness f
    WHERE f.namespace = r.namespace AND f.run_id = r.run_id;
UPDATE tether.runs p SET has_children = true
    WHERE EXISTS (SELECT 1 FROM tether.runs c
                  WHERE c.namespace = p.namespace AND c.parent_run_id = p.run_id);

ALTER TABLE tether.tasks ALTER COLUMN priority SET DEFAULT -1;

-- 0010's, for the tasks inserted unplaced (priority -1): timers take level 2 as their
-- column's old default gave them; a run's other tasks its place, as before.
CREATE OR REPLACE FUNCTION tether.place_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    f tether.run_fairness;
BEGIN
    NEW.priority := 2;
    IF NEW.kind = 'timer' THEN
        RETURN NEW;
    END IF;
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

DROP TRIGGER tasks_place ON tether.tasks;
CREATE TRIGGER tasks_place BEFORE INSERT ON tether.tasks
    FOR EACH ROW WHEN (NEW.priority < 0) EXECUTE FUNCTION tether.place_task();

DROP TRIGGER runs_closed ON tether.runs;
CREATE TRIGGER runs_closed AFTER UPDATE OF status ON tether.runs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running'
                       AND (NEW.parent_run_id IS NOT NULL OR NEW.has_children))
    EXECUTE FUNCTION tether.on_run_closed();

-- 0030's, recording the run's placement too.
CREATE OR REPLACE FUNCTION tether.set_fairness(p_namespace text, p_run_id text, p_fair json)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    f tether.run_fairness;
BEGIN
    IF p_fair IS NULL OR json_typeof(p_fair) <> 'object' THEN
        RETURN;
    END IF;
    INSERT INTO tether.run_fairness VALUES (
        p_namespace, p_run_id, coalesce((p_fair ->> 'priority')::smallint, 2),
        p_fair ->> 'key', coalesce((p_fair ->> 'weight')::float8, 1.0))
        ON CONFLICT (namespace, run_id) DO UPDATE
        SET priority = excluded.priority, fairness_key = excluded.fairness_key,
            weight = excluded.weight
        RETURNING * INTO f;
    UPDATE tether.runs SET placement = CASE WHEN f.fairness_key IS NULL THEN f.priority
                                            ELSE -1 END
        WHERE namespace = p_namespace AND run_id = p_run_id;
    UPDATE tether.tasks t SET priority = f.priority,
        pass = CASE WHEN f.fairness_key IS NULL THEN 0 ELSE tether.fair_pass(
            t.namespace, t.task_queue, t.kind, f.priority, f.fairness_key, f.weight, t.id) END
        WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind <> 'timer';
END $$;

-- 0005's, marking a parent when it starts children (for runs_closed).
CREATE OR REPLACE FUNCTION tether.start_linked_runs(
    p_namespace text, p_run_id text, p_children json, p_continue json
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_child json;
    v_run tether.runs;
    v_ready boolean;
    v_types text[];
    v_attrs text[];
BEGIN
    SELECT * INTO v_run FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    IF NOT v_run.has_children AND json_array_length(coalesce(p_children, '[]')) > 0 THEN
        UPDATE tether.runs SET has_children = true
            WHERE namespace = p_namespace AND run_id = p_run_id;
    END IF;
    FOR v_child IN SELECT c FROM json_array_elements(coalesce(p_children, '[]')) AS c LOOP
        BEGIN
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq, parent_run_id, parent_step,
                                     parent_close_policy)
                VALUES (p_namespace, v_child->>'run_id', v_child->>'workflow_id',
                        v_child->>'workflow_type', v_child->>'task_queue', 'running', v_now, 0,
                        p_run_id, (v_child->>'step')::integer, v_child->>'close_policy');
        EXCEPTION WHEN unique_violation THEN
            PERFORM tether.append_events(
                p_namespace, p_run_id, ARRAY['ChildWorkflowFailed'],
                ARRAY[json_build_object('step', (v_child->>'step')::integer,
                                        'failure', v_child->'refused')::text], v_now);
            IF v_run.status = 'running' THEN
                SELECT w.o_ready INTO v_ready FROM tether.request_workflow_task(
                    p_namespace, p_run_id, v_run.task_queue, v_now) AS w;
                IF v_ready THEN
                    PERFORM tether.notify_work(p_namespace, v_run.task_queue);
                END IF;
            END IF;
            CONTINUE;
        END;
        PERFORM tether.append_events(p_namespace, v_child->>'run_id', ARRAY['WorkflowStarted'],
                                     ARRAY[(v_child->'started')::text], v_now);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
            VALUES (p_namespace, v_child->>'run_id', 'workflow', v_child->>'task_queue',
                    v_now, v_now);
        PERFORM tether.notify_work(p_namespace, v_child->>'task_queue');
        IF v_run.status <> 'running' THEN
            -- The parent closed in this very commit: its policy applies at once.
            PERFORM tether.close_child(
                p_namespace, v_child->>'run_id', v_child->>'close_policy',
                'parent run ' || p_run_id || ' closed (' || v_run.status || ')');
        END IF;
    END LOOP;
    IF p_continue IS NOT NULL THEN
        INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                 status, created_at, last_seq, parent_run_id, parent_step,
                                 parent_close_policy)
            VALUES (p_namespace, p_continue->>'run_id', v_run.workflow_id,
                    p_continue->>'workflow_type', p_continue->>'task_queue', 'running', v_now, 0,
                    v_run.parent_run_id, v_run.parent_step, v_run.parent_close_policy);
        SELECT array_agg('SignalReceived'::text), array_agg(s::text)
            INTO v_types, v_attrs
            FROM json_array_elements(p_continue->'signals') AS s;
        SELECT ARRAY['WorkflowStarted'] || coalesce(v_types, '{}')
                   || coalesce(array_agg(e.type ORDER BY e.seq), '{}'),
               ARRAY[(p_continue->'started')::text] || coalesce(v_attrs, '{}')
                   || coalesce(array_agg(e.attrs::text ORDER BY e.seq), '{}')
            INTO v_types, v_attrs
            FROM tether.events e
            WHERE e.namespace = p_namespace AND e.run_id = p_run_id
              AND e.seq > (p_continue->>'after_seq')::bigint AND e.type = 'SignalReceived';
        PERFORM tether.append_events(p_namespace, p_continue->>'run_id', v_types, v_attrs, v_now);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
            VALUES (p_namespace, p_continue->>'run_id', 'workflow', p_continue->>'task_queue',
                    v_now, v_now);
        PERFORM tether.notify_work(p_namespace, p_continue->>'task_queue');
    END IF;
END $$;

-- 0029's, placing the activities' and timers' tasks it inserts.
CREATE OR REPLACE FUNCTION tether.apply_commit(
    p_namespace text, p_run_id text, p_queue text, p_now float8, p_lease float8,
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text
) RETURNS tether.commit_result LANGUAGE plpgsql AS $$
DECLARE
    r tether.commit_result;
BEGIN
    IF coalesce(array_length(p_act_steps, 1), 0) > 0 THEN
        WITH inserted AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options,
                                      priority)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN p_now ELSE p_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   p_now, a.name, a.args::json, a.options::json,
                   coalesce((SELECT x.placement FROM tether.runs x
                             WHERE x.namespace = p_namespace AND x.run_id = p_run_id), 2)
            FROM unnest(p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                        p_act_owners) AS a (step, name, queue, args, options, owner)
            RETURNING step, id
        )
        SELECT array_agg(i.step), array_agg(i.id) INTO r.o_activity_steps, r.o_activity_ids
            FROM inserted i;
        IF p_act_owners IS NULL OR array_position(p_act_owners, NULL) IS NOT NULL THEN
            PERFORM tether.notify_work(p_namespace, q.queue)
                FROM (SELECT DISTINCT a.queue
                      FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                      WHERE a.owner IS NULL) AS q;
        END IF;
    END IF;
    IF coalesce(array_length(p_timer_steps, 1), 0) > 0 THEN
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                  scheduled_at, priority)
            SELECT p_namespace, p_run_id, 'timer', p_queue, tm.step, tm.fire_at, p_now, 2
            FROM unnest(p_timer_steps, p_timer_fire_at) AS tm (step, fire_at);
        PERFORM tether.notify_work(p_namespace, p_queue);
    END IF;
    IF coalesce(array_length(p_cancel_timers, 1), 0) > 0 THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id
            AND kind = 'timer' AND step = ANY (p_cancel_timers);
    END IF;
    IF p_close_status IS NOT NULL THEN
        UPDATE tether.runs SET status = p_close_status, result = p_close_result::json,
                failure = p_close_failure::json, closed_at = p_now
            WHERE namespace = p_namespace AND run_id = p_run_id;
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        PERFORM tether.notify_closed(p_namespace, p_run_id);
    END IF;
    RETURN r;
END $$;

-- 0030's: placing its tasks; the common step in fewer statements (above).
CREATE OR REPLACE FUNCTION tether.advance_after_activity(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_expected_seq bigint, p_ts float8, p_lease float8,
    p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text,
    p_local_close boolean
) RETURNS tether.advance_result LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_queue text;
    v_count integer := coalesce(cardinality(p_event_types), 0);
    v_awaited boolean;
    v_moved boolean := false;
    v_placement smallint;
    r tether.advance_result;
BEGIN
    r.o_now := tether.epoch();
    r.o_applied := false;
    IF p_close_status IS NULL THEN
        -- The common step, in two statements: the run's row locked, its sequence
        -- checked and moved on; then the activity's task deleted unless a workflow task
        -- waits (a statement after the lock, so it sees every task committed before).
        UPDATE tether.runs x SET last_seq = x.last_seq + v_count
            WHERE x.namespace = p_namespace AND x.run_id = p_run_id
              AND x.last_seq = p_expected_seq
            RETURNING x.task_queue, x.last_seq, x.placement
            INTO v_queue, r.o_last_seq, v_placement;
        v_moved := FOUND;
    END IF;
    IF v_moved THEN
        DELETE FROM tether.tasks t
            WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
            AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now
            AND NOT EXISTS (SELECT 1 FROM tether.tasks w
                            WHERE w.namespace = p_namespace AND w.run_id = p_run_id
                              AND w.kind = 'workflow');
        IF NOT FOUND THEN
            PERFORM 1 FROM tether.tasks t
                WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
                AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
            END IF;
            -- Declined: a workflow task waits. The sequence goes back.
            UPDATE tether.runs x SET last_seq = x.last_seq - v_count
                WHERE x.namespace = p_namespace AND x.run_id = p_run_id
                RETURNING x.last_seq INTO r.o_last_seq;
            RETURN r;
        END IF;
    ELSE
        SELECT x.task_queue, x.last_seq, x.placement INTO v_queue, r.o_last_seq, v_placement
            FROM tether.runs x
            WHERE x.namespace = p_namespace AND x.run_id = p_run_id FOR UPDATE;
        IF r.o_last_seq <> p_expected_seq OR EXISTS (
            SELECT 1 FROM tether.tasks t
            WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind = 'workflow'
        ) THEN
            -- Declined; but a lost lease is still reported as such.
            PERFORM 1 FROM tether.tasks t
                WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
                AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
            END IF;
            RETURN r;
        END IF;
        DELETE FROM tether.tasks t
            WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'activity'
            AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > r.o_now;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
        END IF;
        IF p_close_status IS NULL THEN
            UPDATE tether.runs SET last_seq = last_seq + v_count
                WHERE namespace = p_namespace AND run_id = p_run_id
                RETURNING last_seq INTO r.o_last_seq;
        ELSE
            UPDATE tether.runs
                SET last_seq = last_seq + v_count, status = p_close_status,
                    result = p_close_result::json, failure = p_close_failure::json,
                    closed_at = r.o_now
                WHERE namespace = p_namespace AND run_id = p_run_id
                RETURNING last_seq, awaited INTO r.o_last_seq, v_awaited;
        END IF;
    END IF;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, r.o_last_seq - v_count + e.i, e.type, p_ts,
               e.attrs::json
        FROM unnest(p_event_types, p_event_attrs) WITH ORDINALITY AS e (type, attrs, i);
    IF p_event_types && ARRAY['WorkflowStarted', 'SearchAttributesUpserted'] THEN
        PERFORM tether.apply_event_effects(p_namespace, p_run_id, p_event_types, p_event_attrs);
    END IF;
    r.o_applied := true;
    IF p_close_status IS NOT NULL THEN
        DELETE FROM tether.tasks WHERE namespace = p_namespace AND run_id = p_run_id;
        IF v_awaited OR NOT p_local_close THEN
            PERFORM tether.notify_closed(p_namespace, p_run_id);
        END IF;
        RETURN r;
    END IF;
    IF coalesce(cardinality(p_act_steps), 0) > 0 THEN
        WITH inserted AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options,
                                      priority)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN r.o_now ELSE r.o_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   r.o_now, a.name, a.args::json, a.options::json, coalesce(v_placement, 2)
            FROM unnest(p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                        p_act_owners) AS a (step, name, queue, args, options, owner)
            RETURNING step, id
        )
        SELECT array_agg(i.step), array_agg(i.id) INTO r.o_activity_steps, r.o_activity_ids
            FROM inserted i;
        IF p_act_owners IS NULL OR array_position(p_act_owners, NULL) IS NOT NULL THEN
            PERFORM tether.notify_work(p_namespace, q.queue)
                FROM (SELECT DISTINCT a.queue
                      FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                      WHERE a.owner IS NULL) AS q;
        END IF;
    END IF;
    IF coalesce(cardinality(p_timer_steps), 0) > 0
       OR coalesce(cardinality(p_cancel_timers), 0) > 0 THEN
        PERFORM tether.apply_commit(
            p_namespace, p_run_id, v_queue, r.o_now, p_lease,
            NULL, NULL, NULL, NULL, NULL, NULL,
            p_timer_steps, p_timer_fire_at, p_cancel_timers, NULL, NULL, NULL);
    END IF;
    RETURN r;
END $$;


-- 0030's, placing the activities' tasks it inserts from their runs' rows.
CREATE OR REPLACE FUNCTION tether.write_commits(p_ops tether.advance_op[], p_now float8)
RETURNS TABLE (o_i integer, o_last_seq bigint, o_activity_steps integer[],
               o_activity_ids bigint[])
LANGUAGE plpgsql
-- See "Plans" above.
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
    DELETE FROM tether.tasks t USING unnest(p_ops) AS o
        WHERE o.close_status IS NOT NULL AND t.namespace = o.namespace AND t.run_id = o.run_id;
    PERFORM tether.notify_closed(o.namespace, o.run_id)
        FROM unnest(p_ops) AS o WHERE o.close_status IS NOT NULL;
    PERFORM tether.notify_work(q.namespace, q.queue) FROM (
        SELECT DISTINCT o.namespace, a.queue
        FROM unnest(p_ops) AS o
        CROSS JOIN LATERAL unnest(o.act_queues, o.act_owners) AS a (queue, owner)
        WHERE o.close_status IS NULL AND a.owner IS NULL
    ) AS q;
END $$;
