-- A start whose first workflow task ran in the starting process (every start made
-- beside a worker: W2's) stored its activities through apply_commit (0031), which
-- found the run's placement by reading back the run this start had just inserted, in
-- a call of its own. A run's placement is set only when it starts with fairness
-- (set_fairness, through apply_event_effects above); the tasks of any other run go at
-- the default level, 2. So a start that schedules activities only (no timer, no
-- close), without fairness, now inserts them itself: no call, no look at runs. The
-- rest still go through apply_commit.
--
-- The look cost more than its row: until a database's first ANALYZE, its plan went
-- through whichever index of runs the planner took for a tie (runs_by_type_status,
-- whose fifth column is the run id), reading every entry of the namespace. Starts in
-- a loop on a new database, measured in the server: 143 us a start over the first
-- 2,000 runs, then 90 us more for each further 2,000; now 82 us, flat.

-- 0030's, with the common first task's activities inserted here.
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
        IF p_close_status IS NULL AND p_timer_steps IS NULL AND p_cancel_timers IS NULL
           AND strpos(p_started, '"fairness"') = 0 THEN
            -- The common first task: activities only, on a run at the default level.
            WITH inserted AS (
                INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, step,
                                          visible_at, owner, token, scheduled_at, name, args,
                                          options, priority)
                SELECT p_namespace, p_run_id, 'activity', a.queue, a.step,
                       CASE WHEN a.owner IS NULL THEN v_now ELSE v_now + p_lease END,
                       a.owner, CASE WHEN a.owner IS NULL THEN 0 ELSE 1 END,
                       v_now, a.name, a.args::json, a.options::json, 2
                FROM unnest(p_act_steps, p_act_names, p_act_queues, p_act_args,
                            p_act_options, p_act_owners)
                     AS a (step, name, queue, args, options, owner)
                RETURNING step, id
            )
            SELECT array_agg(i.step), array_agg(i.id)
                INTO r.o_activity_steps, r.o_activity_ids
                FROM inserted i;
            IF p_act_owners IS NULL OR array_position(p_act_owners, NULL) IS NOT NULL THEN
                PERFORM tether.notify_work(p_namespace, q.queue)
                    FROM (SELECT DISTINCT a.queue
                          FROM unnest(p_act_queues, p_act_owners) AS a (queue, owner)
                          WHERE a.owner IS NULL) AS q;
            END IF;
        ELSE
            c := tether.apply_commit(
                p_namespace, p_run_id, p_task_queue, v_now, p_lease,
                p_act_steps, p_act_names, p_act_queues, p_act_args, p_act_options,
                p_act_owners, p_timer_steps, p_timer_fire_at, p_cancel_timers,
                p_close_status, p_close_result, p_close_failure);
            r.o_activity_steps := c.o_activity_steps;
            r.o_activity_ids := c.o_activity_ids;
        END IF;
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
