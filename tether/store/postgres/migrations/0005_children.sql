-- Child runs and continue-as-new. Mirrors store/sqlite/migrations/0005_children.sql
-- (whose logic lives in store/sqlite/children.py).
--
-- A child run names its parent (same namespace), the parent's step that started it,
-- and what happens to it when the parent closes first (parent_close_policy:
-- 'terminate', 'cancel' or 'abandon'). A run continued as new closes with status
-- 'continued_as_new' and passes its parent link to the new run.
--
-- Closing is caught by a trigger, so every way a run closes (a workflow task's
-- commit, the local fast path, terminate) tells the parent and applies the close
-- policy in the closing transaction. Lock order: the closing run, then its parent or
-- its children; the rare deadlock between a parent and a child closing at once rolls
-- back cleanly and the store retries it.
ALTER TABLE tether.runs ADD COLUMN parent_run_id text;
ALTER TABLE tether.runs ADD COLUMN parent_step integer;
ALTER TABLE tether.runs ADD COLUMN parent_close_policy text;
CREATE INDEX runs_by_parent ON tether.runs (namespace, parent_run_id)
    WHERE parent_run_id IS NOT NULL;

-- Apply a closing run's policy to one open child; a child that closed meanwhile is
-- left as it is.
CREATE FUNCTION tether.close_child(
    p_namespace text, p_run_id text, p_policy text, p_reason text
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_policy = 'terminate' THEN
        PERFORM 1 FROM tether.terminate_run(p_namespace, p_run_id, p_reason, 'parent');
    ELSIF p_policy = 'cancel' THEN
        PERFORM 1 FROM tether.request_cancel(p_namespace, p_run_id, p_reason, 'parent');
    END IF;
EXCEPTION WHEN SQLSTATE 'TT003' OR SQLSTATE 'TT002' THEN
    NULL;
END $$;

CREATE FUNCTION tether.on_run_closed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_parent_status text;
    v_parent_queue text;
    v_type text;
    v_attrs text;
    v_ready boolean;
    v_child record;
BEGIN
    IF NEW.parent_run_id IS NOT NULL AND NEW.status <> 'continued_as_new' THEN
        SELECT r.status, r.task_queue INTO v_parent_status, v_parent_queue FROM tether.runs r
            WHERE r.namespace = NEW.namespace AND r.run_id = NEW.parent_run_id FOR UPDATE;
        IF FOUND AND v_parent_status = 'running' THEN
            IF NEW.status = 'completed' THEN
                v_type := 'ChildWorkflowCompleted';
                v_attrs := json_build_object('step', NEW.parent_step, 'result', NEW.result)::text;
            ELSE
                v_type := 'ChildWorkflowFailed';
                v_attrs := json_build_object(
                    'step', NEW.parent_step,
                    'failure', json_build_object(
                        'code', 'child_workflow_error',
                        'message', 'child workflow ' || NEW.workflow_type || ' ' || NEW.status,
                        'workflow_type', NEW.workflow_type,
                        'workflow_id', NEW.workflow_id,
                        'run_id', NEW.run_id,
                        'cause', NEW.failure))::text;
            END IF;
            PERFORM tether.append_events(NEW.namespace, NEW.parent_run_id, ARRAY[v_type],
                                         ARRAY[v_attrs], v_now);
            SELECT w.o_ready INTO v_ready FROM tether.request_workflow_task(
                NEW.namespace, NEW.parent_run_id, v_parent_queue, v_now) AS w;
            IF v_ready THEN
                PERFORM tether.notify_work(NEW.namespace, v_parent_queue);
            END IF;
        END IF;
    END IF;
    FOR v_child IN
        SELECT r.run_id, r.parent_close_policy FROM tether.runs r
        WHERE r.namespace = NEW.namespace AND r.parent_run_id = NEW.run_id
          AND r.status = 'running'
    LOOP
        PERFORM tether.close_child(NEW.namespace, v_child.run_id, v_child.parent_close_policy,
                                   'parent run ' || NEW.run_id || ' closed (' || NEW.status || ')');
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER runs_closed AFTER UPDATE OF status ON tether.runs
    FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running')
    EXECUTE FUNCTION tether.on_run_closed();

-- Create the runs a workflow task's commit starts, after its events and close (same
-- transaction, the run row locked): children ({run_id, workflow_id, workflow_type,
-- task_queue, started, step, close_policy, refused}), and the run that continues it
-- ({run_id, workflow_type, task_queue, started, signals, after_seq}).
CREATE FUNCTION tether.start_linked_runs(
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
