-- The events' two row triggers (0006's search attributes, 0010's fairness) become a
-- function their writers call. A row trigger with a WHEN clause costs every statement
-- that inserts into the table the clause read back from the catalog and prepared again:
-- 14-15 us a statement for these two (measured with them disabled), on every write of
-- every run, for the few events that have an effect (WorkflowStarted with search
-- attributes or a fairness key, SearchAttributesUpserted). The writers know which
-- events they write, and a look at their arrays costs a microsecond: each one calls
-- apply_event_effects when one of those events is among them, right after its INSERT,
-- where the triggers fired (a start's fairness is recorded before its tasks are placed).
-- The writers: append_events, start_run_one, advance_after_activity, write_commits and
-- start_runs here, and the reset's copy of a history (store/postgres/reset.py).

-- A run's search attributes as an event sets them (0006's trigger, for any writer).
CREATE FUNCTION tether.set_search_attributes(
    p_namespace text, p_run_id text, p_attrs json
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_attrs IS NULL OR json_typeof(p_attrs) <> 'object' THEN
        RETURN;
    END IF;
    DELETE FROM tether.search_attributes s
        WHERE s.namespace = p_namespace AND s.run_id = p_run_id
          AND s.name IN (SELECT json_object_keys(p_attrs));
    INSERT INTO tether.search_attributes
        (namespace, run_id, name, idx, type, str_value, int_value, float_value, created_at)
    SELECT p_namespace, p_run_id, a.key, v.idx - 1, a.value ->> 'type',
           CASE WHEN a.value ->> 'type' IN ('keyword', 'keyword_list')
                THEN v.value #>> '{}' END,
           CASE WHEN a.value ->> 'type' IN ('int', 'bool', 'datetime')
                THEN (v.value #>> '{}')::bigint END,
           CASE WHEN a.value ->> 'type' = 'float' THEN (v.value #>> '{}')::float8 END,
           r.created_at
    FROM json_each(p_attrs) AS a
    CROSS JOIN LATERAL json_array_elements(
        CASE WHEN json_typeof(a.value) = 'object' THEN a.value -> 'values' ELSE '[]' END)
        WITH ORDINALITY AS v (value, idx)
    JOIN tether.runs r ON r.namespace = p_namespace AND r.run_id = p_run_id;
END $$;

-- A run's priority and fairness key as its start sets them, and its tasks placed by them
-- (0010's trigger, for any writer).
CREATE FUNCTION tether.set_fairness(p_namespace text, p_run_id text, p_fair json)
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
    UPDATE tether.tasks t SET priority = f.priority,
        pass = CASE WHEN f.fairness_key IS NULL THEN 0 ELSE tether.fair_pass(
            t.namespace, t.task_queue, t.kind, f.priority, f.fairness_key, f.weight, t.id) END
        WHERE t.namespace = p_namespace AND t.run_id = p_run_id AND t.kind <> 'timer';
END $$;

-- What events just written to a run set, in their order (what the triggers did per row).
CREATE FUNCTION tether.apply_event_effects(
    p_namespace text, p_run_id text, p_types text[], p_attrs text[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_types), 0) LOOP
        IF p_types[i] = 'WorkflowStarted' AND strpos(p_attrs[i], '"fairness"') > 0 THEN
            PERFORM tether.set_fairness(p_namespace, p_run_id, p_attrs[i]::json -> 'fairness');
        END IF;
        IF p_types[i] IN ('WorkflowStarted', 'SearchAttributesUpserted')
           AND strpos(p_attrs[i], '"search_attributes"') > 0 THEN
            PERFORM tether.set_search_attributes(
                p_namespace, p_run_id, p_attrs[i]::json -> 'search_attributes');
        END IF;
    END LOOP;
END $$;

DROP TRIGGER events_search_attributes ON tether.events;
DROP TRIGGER events_record_fairness ON tether.events;
DROP FUNCTION tether.apply_search_attributes();
DROP FUNCTION tether.record_fairness();

-- 0001's, calling apply_event_effects.
CREATE OR REPLACE FUNCTION tether.append_events(
    p_namespace text, p_run_id text, p_types text[], p_attrs text[], p_now float8
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_types, 1), 0);
    v_last bigint;
BEGIN
    UPDATE tether.runs SET last_seq = last_seq + v_count
        WHERE namespace = p_namespace AND run_id = p_run_id
        RETURNING last_seq INTO v_last;
    INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
        SELECT p_namespace, p_run_id, v_last - v_count + e.i, e.type, p_now, e.attrs::json
        FROM unnest(p_types, p_attrs) WITH ORDINALITY AS e (type, attrs, i);
    IF p_types && ARRAY['WorkflowStarted', 'SearchAttributesUpserted'] THEN
        PERFORM tether.apply_event_effects(p_namespace, p_run_id, p_types, p_attrs);
    END IF;
    RETURN v_last;
END $$;

-- 0029's, calling apply_event_effects after each INSERT of events.
CREATE OR REPLACE FUNCTION tether.start_run_one(
    p_namespace text, p_run_id text, p_workflow_id text, p_workflow_type text,
    p_task_queue text, p_started text, p_owner text, p_lease float8, p_created_at float8,
    p_executed boolean, p_event_types text[], p_event_attrs text[],
    p_act_steps integer[], p_act_names text[], p_act_queues text[], p_act_args text[],
    p_act_options text[], p_act_owners text[],
    p_timer_steps integer[], p_timer_fire_at float8[], p_cancel_timers integer[],
    p_close_status text, p_close_result text, p_close_failure text
) RETURNS tether.start_result LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_count integer := CASE WHEN p_executed
                            THEN coalesce(array_length(p_event_types, 1), 0) ELSE 0 END;
    r tether.start_result;
    c tether.commit_result;
BEGIN
    r.o_created_at := coalesce(p_created_at, v_now);
    r.o_last_seq := 1 + v_count;
    INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                             status, created_at, last_seq)
        VALUES (p_namespace, p_run_id, p_workflow_id, p_workflow_type, p_task_queue,
                'running', r.o_created_at, r.o_last_seq);
    IF p_executed THEN
        r.o_now := v_now;
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT p_namespace, p_run_id, e.i, e.type,
                   CASE WHEN e.i = 1 THEN r.o_created_at ELSE v_now END, e.attrs::json
            FROM unnest(array_prepend('WorkflowStarted'::text, p_event_types),
                        array_prepend(p_started, p_event_attrs))
                 WITH ORDINALITY AS e (type, attrs, i);
        IF strpos(p_started, '"search_attributes"') > 0 OR strpos(p_started, '"fairness"') > 0
           OR 'SearchAttributesUpserted' = ANY (p_event_types) THEN
            PERFORM tether.apply_event_effects(
                p_namespace, p_run_id, array_prepend('WorkflowStarted'::text, p_event_types),
                array_prepend(p_started, p_event_attrs));
        END IF;
        c := tether.apply_commit(
            p_namespace, p_run_id, p_task_queue, v_now, p_lease,
            p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
            p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
            p_close_status, p_close_result, p_close_failure);
        r.o_activity_steps := c.o_activity_steps;
        r.o_activity_ids := c.o_activity_ids;
    ELSE
        INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            VALUES (p_namespace, p_run_id, 1, 'WorkflowStarted', r.o_created_at,
                    p_started::json);
        IF strpos(p_started, '"search_attributes"') > 0 OR strpos(p_started, '"fairness"') > 0
        THEN
            PERFORM tether.apply_event_effects(
                p_namespace, p_run_id, ARRAY['WorkflowStarted'], ARRAY[p_started]);
        END IF;
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                  scheduled_at, owner, token)
            VALUES (p_namespace, p_run_id, 'workflow', p_task_queue,
                    CASE WHEN p_owner IS NULL THEN v_now ELSE v_now + p_lease END,
                    r.o_created_at, p_owner, CASE WHEN p_owner IS NULL THEN 0 ELSE 1 END)
            RETURNING id INTO r.o_task_id;
        IF p_owner IS NULL THEN
            PERFORM tether.notify_work(p_namespace, p_task_queue);
        END IF;
    END IF;
    RETURN r;
END $$;

-- 0029's, calling apply_event_effects.
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
    r tether.advance_result;
BEGIN
    r.o_now := tether.epoch();
    r.o_applied := false;
    SELECT x.task_queue, x.last_seq INTO v_queue, r.o_last_seq FROM tether.runs x
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
                                      owner, token, scheduled_at, name, args, options)
            SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN r.o_now ELSE r.o_now + p_lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   r.o_now, a.name, a.args::json, a.options::json
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

-- 0017's, calling apply_event_effects for the commits that upsert search attributes.
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
            RETURNING o.i, r.last_seq
        ), appended AS (
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
            SELECT o.namespace, o.run_id, m.last_seq - cardinality(o.event_types) + e.n,
                   e.type, o.ts, e.attrs::json
            FROM moved m JOIN ops o ON o.i = m.i
            CROSS JOIN LATERAL unnest(o.event_types, o.event_attrs)
                WITH ORDINALITY AS e (type, attrs, n)
        ), scheduled AS (
            INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step, visible_at,
                                      owner, token, scheduled_at, name, args, options)
            SELECT o.namespace, o.run_id, 'activity', a.queue, a.step,
                   CASE WHEN a.owner IS NULL THEN p_now ELSE p_now + o.lease END,
                   a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                   p_now, a.name, a.args::json, a.options::json
            FROM ops o
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

-- 0017's, calling apply_event_effects after each INSERT of events.
CREATE OR REPLACE FUNCTION tether.start_runs(p_ops tether.start_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_created_at float8, o_task_id bigint,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql
-- See "Plans" above.
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v tether.start_op;
    v_now float8 := tether.epoch();
    v_count integer;
    v_fast integer[] := '{}';
    v_executed integer[] := '{}';
    v_done tether.written[] := '{}';
    v_tasks bigint[] := '{}';
    v_row record;
    v_i integer := 0;
BEGIN
    IF cardinality(p_ops) > 2 THEN  -- see "Small batches" above
        BEGIN
            -- The unique index on running workflow ids decides which starts are new.
            WITH ops AS (
                SELECT o.*, o.ordinality::integer AS i,
                       min(o.ordinality) OVER (PARTITION BY o.namespace, o.workflow_id) AS first
                FROM unnest(p_ops) WITH ORDINALITY AS o
            ), fresh AS (
                INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type,
                                         task_queue, status, created_at, last_seq)
                SELECT o.namespace, o.run_id, o.workflow_id, o.workflow_type, o.task_queue,
                       'running', coalesce(o.created_at, v_now), 1
                FROM ops o
                WHERE o.ordinality = o.first
                  AND (NOT coalesce(o.executed, false)
                       OR tether.set_based(o.timer_steps, o.cancel_timers, o.act_steps,
                                           o.close_status))
                  AND EXISTS (SELECT 1 FROM tether.namespaces n
                              WHERE n.name = o.namespace AND n.deleting_since IS NULL)
                ORDER BY o.namespace, o.run_id
                ON CONFLICT (namespace, workflow_id) WHERE status = 'running' DO NOTHING
                RETURNING namespace, run_id
            )
            SELECT coalesce(array_agg(o.i ORDER BY o.i), '{}'),
                   coalesce(array_agg(o.i ORDER BY o.i) FILTER (WHERE o.executed), '{}')
                INTO v_fast, v_executed
                FROM fresh f JOIN ops o ON o.namespace = f.namespace AND o.run_id = f.run_id;
            IF cardinality(v_fast) > 0 THEN
                INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT o.namespace, o.run_id, 1, 'WorkflowStarted',
                           coalesce(o.created_at, v_now),
                           o.started::json
                    FROM unnest(p_ops) WITH ORDINALITY AS o WHERE o.ordinality = ANY (v_fast);
                PERFORM tether.apply_event_effects(
                        o.namespace, o.run_id, ARRAY['WorkflowStarted'], ARRAY[o.started])
                    FROM unnest(p_ops) WITH ORDINALITY AS o
                    WHERE o.ordinality = ANY (v_fast)
                      AND (strpos(o.started, '"search_attributes"') > 0
                           OR strpos(o.started, '"fairness"') > 0);
                -- A task for each start not already run: ready for any worker, or leased to
                -- the starting process's worker; the lease runs on the database clock.
                FOR v_row IN
                    WITH queued AS (
                        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                                  scheduled_at, owner, token)
                        SELECT o.namespace, o.run_id, 'workflow', o.task_queue,
                               CASE WHEN o.owner IS NULL THEN v_now ELSE v_now + o.lease END,
                               coalesce(o.created_at, v_now), o.owner,
                               CASE WHEN o.owner IS NULL THEN 0 ELSE 1 END
                        FROM unnest(p_ops) WITH ORDINALITY AS o
                        WHERE o.ordinality = ANY (v_fast) AND NOT coalesce(o.executed, false)
                        RETURNING namespace, run_id, id
                    )
                    SELECT o.ordinality::integer AS i, q.id
                    FROM queued q JOIN unnest(p_ops) WITH ORDINALITY AS o
                      ON o.namespace = q.namespace AND o.run_id = q.run_id
                LOOP
                    v_tasks[v_row.i] := v_row.id;
                END LOOP;
                PERFORM tether.notify_work(q.namespace, q.task_queue) FROM (
                    SELECT DISTINCT o.namespace, o.task_queue
                    FROM unnest(p_ops) WITH ORDINALITY AS o
                    WHERE o.ordinality = ANY (v_fast) AND NOT coalesce(o.executed, false)
                      AND o.owner IS NULL
                ) AS q;
                -- A start already run: its first task's commit, as if completed at once.
                IF cardinality(v_executed) > 0 THEN
                    FOR v_row IN
                        SELECT * FROM tether.write_commits(
                            ARRAY(SELECT ROW(o.namespace, o.run_id, NULL, NULL, NULL, v_now,
                                             o.lease, o.event_types, o.event_attrs, o.act_steps,
                                             o.act_names, o.act_queues, o.act_args, o.act_options,
                                             o.act_owners, o.timer_steps, o.timer_fire_at,
                                             o.cancel_timers, o.close_status, o.close_result,
                                             o.close_failure)::tether.advance_op
                                  FROM unnest(p_ops) WITH ORDINALITY AS o
                                  WHERE o.ordinality = ANY (v_executed) ORDER BY o.ordinality),
                            v_now)
                    LOOP
                        v_done[v_executed[v_row.o_i]] := ROW(
                            v_row.o_last_seq, v_row.o_activity_steps, v_row.o_activity_ids
                        )::tether.written;
                    END LOOP;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            RAISE LOG 'tether: start_runs goes one by one: % (SQLSTATE %)', SQLERRM, SQLSTATE;
            v_fast := '{}';
            v_done := '{}';
            v_tasks := '{}';
        END;
    END IF;

    FOREACH v IN ARRAY p_ops LOOP
        v_i := v_i + 1;
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_created_at := NULL; o_task_id := NULL; o_now := NULL; o_activity_steps := NULL;
        o_activity_ids := NULL; o_next_token := NULL; o_last_seq := NULL;
        IF v_i = ANY (v_fast) THEN
            o_created_at := coalesce(v.created_at, v_now);
            IF v.executed THEN
                o_now := v_now;
                o_activity_steps := v_done[v_i].activity_steps;
                o_activity_ids := v_done[v_i].activity_ids;
                o_last_seq := v_done[v_i].last_seq;
            ELSE
                o_task_id := v_tasks[v_i];
                o_last_seq := 1;
            END IF;
            RETURN NEXT;
            CONTINUE;
        END IF;
        BEGIN
            o_created_at := coalesce(v.created_at, v_now);
            v_count := CASE WHEN v.executed
                            THEN coalesce(array_length(v.event_types, 1), 0) ELSE 0 END;
            o_last_seq := 1 + v_count;
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq)
                VALUES (v.namespace, v.run_id, v.workflow_id, v.workflow_type, v.task_queue,
                        'running', o_created_at, o_last_seq);
            INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                VALUES (v.namespace, v.run_id, 1, 'WorkflowStarted', o_created_at,
                        v.started::json);
            IF strpos(v.started, '"search_attributes"') > 0 OR strpos(v.started, '"fairness"') > 0
            THEN
                PERFORM tether.apply_event_effects(
                    v.namespace, v.run_id, ARRAY['WorkflowStarted'], ARRAY[v.started]);
            END IF;
            IF v.executed THEN
                o_now := v_now;
                INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT v.namespace, v.run_id, 1 + e.i, e.type, v_now, e.attrs::json
                    FROM unnest(v.event_types, v.event_attrs) WITH ORDINALITY AS e (type, attrs, i);
                IF v.event_types && ARRAY['WorkflowStarted', 'SearchAttributesUpserted'] THEN
                    PERFORM tether.apply_event_effects(
                        v.namespace, v.run_id, v.event_types, v.event_attrs);
                END IF;
                SELECT c.o_activity_steps, c.o_activity_ids
                    INTO o_activity_steps, o_activity_ids
                    FROM tether.apply_commit(
                        v.namespace, v.run_id, v.task_queue, v_now, v.lease,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS c;
            ELSE
                INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at,
                                          scheduled_at, owner, token)
                    VALUES (v.namespace, v.run_id, 'workflow', v.task_queue,
                            CASE WHEN v.owner IS NULL THEN v_now ELSE v_now + v.lease END,
                            o_created_at, v.owner,
                            CASE WHEN v.owner IS NULL THEN 0 ELSE 1 END)
                    RETURNING id INTO o_task_id;
                IF v.owner IS NULL THEN
                    PERFORM tether.notify_work(v.namespace, v.task_queue);
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS o_state = RETURNED_SQLSTATE, o_message = MESSAGE_TEXT,
                                    o_constraint = CONSTRAINT_NAME;
            RAISE LOG 'tether refused start_run(%, %): % (SQLSTATE %)',
                v.namespace, v.run_id, o_message, o_state;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
