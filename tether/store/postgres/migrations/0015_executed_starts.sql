-- An executed start (the starting process's worker already ran the first workflow
-- task) writes no task row: 0011 inserted the task, leased to that worker, and the
-- nested complete_workflow_task deleted it again at once, with every index of tasks
-- kept up twice, and bumped the run's last_seq in a second row version. The run is new
-- in this very transaction, so nothing can have raced the task: no fence is needed.
-- Same signature and results as in 0011 (o_task_id is NULL for an executed start).
CREATE OR REPLACE FUNCTION tether.start_runs(p_ops tether.start_op[])
RETURNS TABLE (o_state text, o_message text, o_constraint text,
               o_created_at float8, o_task_id bigint,
               o_now float8, o_activity_steps integer[], o_activity_ids bigint[],
               o_next_token bigint, o_last_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v tether.start_op;
    v_now float8 := tether.epoch();
    v_count integer;
BEGIN
    FOREACH v IN ARRAY p_ops LOOP
        o_state := NULL; o_message := NULL; o_constraint := NULL;
        o_created_at := NULL; o_task_id := NULL; o_now := NULL; o_activity_steps := NULL;
        o_activity_ids := NULL; o_next_token := NULL; o_last_seq := NULL;
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
            IF v.executed THEN
                o_now := v_now;
                INSERT INTO tether.events (namespace, run_id, seq, type, ts, attrs)
                    SELECT v.namespace, v.run_id, 1 + e.i, e.type, v_now, e.attrs::json
                    FROM unnest(v.event_types, v.event_attrs) WITH ORDINALITY AS e (type, attrs, i);
                SELECT c.o_activity_steps, c.o_activity_ids
                    INTO o_activity_steps, o_activity_ids
                    FROM tether.apply_commit(
                        v.namespace, v.run_id, v.task_queue, v_now, v.lease,
                        v.act_steps, v.act_names, v.act_queues, v.act_args, v.act_options,
                        v.act_owners, v.timer_steps, v.timer_fire_at, v.cancel_timers,
                        v.close_status, v.close_result, v.close_failure) AS c;
            ELSE
                -- The lease runs on the database clock, whatever time the task saw.
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
