-- Updates: request-response calls into a running workflow. Mirrors
-- store/sqlite/migrations/0007_updates.sql.
--
-- A request is not history: it waits here ('pending', in arrival order) until a
-- worker holding the run validates it. Rejected, it gets its failure and history is
-- untouched; accepted, an UpdateAccepted event is appended and the row is 'accepted';
-- the workflow task that records UpdateCompleted sets the outcome ('completed' or
-- 'failed') in the same transaction. The update id is unique per run, so asking
-- again with the same id finds the same row. Rows name their namespace and run, so
-- namespace and run deletion (tether.namespaced_tables) remove them with the rest.
-- Outcomes are announced on the channel tether_update ([namespace, run_id]).
-- Errors: SQLSTATE TT001 = lease lost, TT002 = run not found, TT003 = run closed.
CREATE TABLE tether.updates (
    namespace   text NOT NULL,
    run_id      text NOT NULL,
    update_id   text NOT NULL,
    arrival     bigint GENERATED ALWAYS AS IDENTITY,
    name        text NOT NULL,
    args        json NOT NULL,
    status      text NOT NULL
        CHECK (status IN ('pending', 'accepted', 'completed', 'failed', 'rejected')),
    result      json,
    failure     json,
    created_at  float8 NOT NULL,
    PRIMARY KEY (namespace, run_id, update_id)
);
CREATE INDEX updates_pending ON tether.updates (namespace, run_id, arrival)
    WHERE status = 'pending';

CREATE FUNCTION tether.notify_update(p_namespace text, p_run_id text) RETURNS void
    LANGUAGE sql
    AS $$ SELECT pg_notify('tether_update', json_build_array(p_namespace, p_run_id)::text) $$;

-- Record a request on an open run and ask for a workflow task; a request with the
-- same update id is returned as it is (on an open or a closed run).
CREATE FUNCTION tether.request_update(
    p_namespace text, p_run_id text, p_update_id text, p_name text, p_args text
) RETURNS SETOF tether.updates LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_status text;
    v_queue text;
    v_ready boolean;
BEGIN
    SELECT r.status, r.task_queue INTO v_status, v_queue FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no such run' USING ERRCODE = 'TT002';
    END IF;
    IF EXISTS (SELECT 1 FROM tether.updates u WHERE u.namespace = p_namespace
               AND u.run_id = p_run_id AND u.update_id = p_update_id) THEN
        RETURN QUERY SELECT * FROM tether.updates u WHERE u.namespace = p_namespace
            AND u.run_id = p_run_id AND u.update_id = p_update_id;
        RETURN;
    END IF;
    IF v_status <> 'running' THEN
        RAISE EXCEPTION 'the run is already %; cannot update it', v_status
            USING ERRCODE = 'TT003';
    END IF;
    INSERT INTO tether.updates (namespace, run_id, update_id, name, args, status, created_at)
        VALUES (p_namespace, p_run_id, p_update_id, p_name, p_args::json, 'pending', v_now);
    SELECT w.o_ready INTO v_ready
        FROM tether.request_workflow_task(p_namespace, p_run_id, v_queue, v_now) AS w;
    IF v_ready THEN
        PERFORM tether.notify_work(p_namespace, v_queue);
    END IF;
    RETURN QUERY SELECT * FROM tether.updates u WHERE u.namespace = p_namespace
        AND u.run_id = p_run_id AND u.update_id = p_update_id;
END $$;

-- Update the open run of the workflow id, or start the run with the request (one
-- transaction). p_use_existing false: an open run is a conflict (unique_violation).
CREATE FUNCTION tether.update_with_start(
    p_namespace text, p_run_id text, p_workflow_id text, p_workflow_type text, p_queue text,
    p_started text, p_update_id text, p_name text, p_args text, p_use_existing boolean
) RETURNS SETOF tether.updates LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_open text;
BEGIN
    LOOP
        SELECT r.run_id INTO v_open FROM tether.runs r
            WHERE r.namespace = p_namespace AND r.workflow_id = p_workflow_id
              AND r.status = 'running';
        IF FOUND THEN
            IF NOT p_use_existing THEN
                RAISE EXCEPTION 'an open run has workflow id %', p_workflow_id
                    USING ERRCODE = 'unique_violation';
            END IF;
            RETURN QUERY SELECT * FROM tether.request_update(
                p_namespace, v_open, p_update_id, p_name, p_args);
            RETURN;
        END IF;
        BEGIN
            INSERT INTO tether.runs (namespace, run_id, workflow_id, workflow_type, task_queue,
                                     status, created_at, last_seq)
                VALUES (p_namespace, p_run_id, p_workflow_id, p_workflow_type, p_queue,
                        'running', v_now, 0);
        EXCEPTION WHEN unique_violation THEN
            CONTINUE;
        END;
        PERFORM tether.append_events(p_namespace, p_run_id, ARRAY['WorkflowStarted'],
                                     ARRAY[p_started], v_now);
        INSERT INTO tether.tasks (namespace, run_id, kind, task_queue, visible_at, scheduled_at)
            VALUES (p_namespace, p_run_id, 'workflow', p_queue, v_now, v_now);
        PERFORM tether.notify_work(p_namespace, p_queue);
        INSERT INTO tether.updates
            (namespace, run_id, update_id, name, args, status, created_at)
            VALUES (p_namespace, p_run_id, p_update_id, p_name, p_args::json, 'pending', v_now);
        RETURN QUERY SELECT * FROM tether.updates u WHERE u.namespace = p_namespace
            AND u.run_id = p_run_id AND u.update_id = p_update_id;
        RETURN;
    END LOOP;
END $$;

-- A worker's verdict on pending requests, under its workflow task's lease: append
-- UpdateAccepted for the accepted ones (in order), store the rejections' failures.
CREATE FUNCTION tether.accept_updates(
    p_namespace text, p_run_id text, p_task_id bigint, p_token bigint,
    p_accepted text[], p_events text[], p_rejected text[], p_failures text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_now float8 := tether.epoch();
    v_last bigint;
BEGIN
    SELECT r.last_seq INTO v_last FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id FOR UPDATE;
    PERFORM 1 FROM tether.tasks t
        WHERE t.id = p_task_id AND t.namespace = p_namespace AND t.kind = 'workflow'
        AND t.token = p_token AND t.owner IS NOT NULL AND t.visible_at > v_now;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'lease lost' USING ERRCODE = 'TT001';
    END IF;
    IF coalesce(array_length(p_accepted, 1), 0) > 0 THEN
        v_last := tether.append_events(
            p_namespace, p_run_id, array_fill('UpdateAccepted'::text,
            ARRAY[array_length(p_accepted, 1)]), p_events, v_now);
        UPDATE tether.updates u SET status = 'accepted'
            WHERE u.namespace = p_namespace AND u.run_id = p_run_id
              AND u.update_id = ANY (p_accepted) AND u.status = 'pending';
    END IF;
    IF coalesce(array_length(p_rejected, 1), 0) > 0 THEN
        UPDATE tether.updates u SET status = 'rejected', failure = x.failure::json
            FROM unnest(p_rejected, p_failures) AS x (update_id, failure)
            WHERE u.namespace = p_namespace AND u.run_id = p_run_id
              AND u.update_id = x.update_id AND u.status = 'pending';
        PERFORM tether.notify_update(p_namespace, p_run_id);
    END IF;
    RETURN v_last;
END $$;

-- Store the outcomes of updates whose UpdateCompleted a commit records (called in the
-- commit's transaction).
CREATE FUNCTION tether.complete_updates(
    p_namespace text, p_run_id text, p_ids text[], p_results text[], p_failures text[]
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tether.updates u
        SET status = CASE WHEN x.failure IS NULL THEN 'completed' ELSE 'failed' END,
            result = x.result::json, failure = x.failure::json
        FROM unnest(p_ids, p_results, p_failures) AS x (update_id, result, failure)
        WHERE u.namespace = p_namespace AND u.run_id = p_run_id
          AND u.update_id = x.update_id AND u.status = 'accepted';
    PERFORM tether.notify_update(p_namespace, p_run_id);
END $$;
