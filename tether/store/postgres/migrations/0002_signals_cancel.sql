-- Signals and cancellation. Mirrors store/sqlite/migrations/0002_signals_cancel.sql.
--
-- A signal or a cancellation request is an input event: it is appended to the run's
-- history and asks for a workflow task, exactly as an activity's completion does
-- (tether.request_workflow_task). A cancellation request also marks the run's
-- activities scheduled so far, and their heartbeats answer that they should stop.
-- Errors: SQLSTATE TT002 = run not found, TT003 = run already closed.
ALTER TABLE tether.tasks ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;

-- Append input events to an open run (locking its row first) and ask for a workflow
-- task; p_action names what the caller meant to do, for the error.
CREATE FUNCTION tether.append_input(
    p_namespace text, p_run_id text, p_types text[], p_attrs text[], p_action text
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_status text;
    v_queue text;
    v_last bigint;
    v_ready boolean;
BEGIN
    SELECT r.status, r.task_queue INTO v_status, v_queue FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such run' USING ERRCODE = 'TT002';
    END IF;
    IF v_status <> 'running' THEN
        RAISE EXCEPTION 'the run is already %; cannot % it', v_status, p_action
            USING ERRCODE = 'TT003';
    END IF;
    v_last := tether.append_events(p_namespace, p_run_id, p_types, p_attrs, v_now);
    SELECT w.o_ready INTO v_ready
        FROM tether.request_workflow_task(p_namespace, p_run_id, v_queue, v_now) AS w;
    IF v_ready THEN
        PERFORM tether.notify_work(p_namespace, v_queue);
    END IF;
    RETURN v_last;
END $$;

CREATE FUNCTION tether.signal_run(
    p_namespace text, p_run_id text, p_signal text, p_action text
) RETURNS bigint LANGUAGE sql AS $$
    SELECT tether.append_input(p_namespace, p_run_id, ARRAY['SignalReceived'],
                               ARRAY[p_signal], p_action)
$$;

-- Signal the open run of the workflow id, or start the run and signal it; returns the
-- run id signalled. Two callers racing to start the same id: the loser's insert waits
-- for the winner's commit, fails on the unique index, and signals the winner's run.
CREATE FUNCTION tether.signal_with_start(
    p_namespace text, p_run_id text, p_workflow_id text, p_workflow_type text, p_queue text,
    p_started text, p_signal text, p_action text
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_open text;
BEGIN
    LOOP
        SELECT r.run_id INTO v_open FROM tether.runs r
            WHERE r.namespace = p_namespace AND r.workflow_id = p_workflow_id
              AND r.status = 'running';
        IF FOUND THEN
            PERFORM tether.signal_run(p_namespace, v_open, p_signal, p_action);
            RETURN v_open;
        END IF;
        BEGIN
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq)
                VALUES (p_namespace, p_run_id, p_workflow_id, p_workflow_type, p_queue,
                        'running', v_now, 0);
        EXCEPTION WHEN unique_violation THEN
            CONTINUE;
        END;
        PERFORM tether.append_events(p_namespace, p_run_id,
                                     ARRAY['WorkflowStarted', 'SignalReceived'],
                                     ARRAY[p_started, p_signal], v_now);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
            VALUES (p_namespace, p_run_id, 'workflow', p_queue, v_now, v_now);
        PERFORM tether.notify_work(p_namespace, p_queue);
        RETURN p_run_id;
    END LOOP;
END $$;

CREATE FUNCTION tether.request_cancel(
    p_namespace text, p_run_id text, p_reason text, p_identity text
) RETURNS SETOF tether.runs LANGUAGE plpgsql AS $$
BEGIN
    PERFORM tether.append_input(
        p_namespace, p_run_id, ARRAY['WorkflowCancelRequested'],
        ARRAY[json_build_object('reason', p_reason, 'identity', p_identity)::text], 'cancel');
    UPDATE tether.tasks SET cancel_requested = true
        WHERE namespace = p_namespace AND run_id = p_run_id AND kind = 'activity';
    RETURN QUERY SELECT * FROM tether.runs
        WHERE namespace = p_namespace AND run_id = p_run_id;
END $$;
