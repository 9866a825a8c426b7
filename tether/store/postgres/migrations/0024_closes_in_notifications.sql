-- A close's notification carries the close: status, time, last seq, result and failure,
-- read from the run's row as the closing transaction left it. A waiter in another
-- process (a client whose runs a separate worker runs) then has the outcome without
-- reading the run back: one round trip less between a run's last step and its caller.
-- Too big for a notification (PostgreSQL's limit is 8000 bytes), or called while the
-- row does not show the close yet, the payload is the plain [namespace, run_id] and
-- waiters read the run as before. Every session listening on the database receives the
-- payload: no wider than what the store's one role may read already (there is no
-- per-tenant role or row security); with those, results must leave the payload.
CREATE OR REPLACE FUNCTION tether.notify_closed(p_namespace text, p_run_id text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_payload text;
BEGIN
    SELECT json_build_array(p_namespace, p_run_id, r.status, r.closed_at, r.last_seq,
                            r.result, r.failure)::text
        INTO v_payload
        FROM tether.runs r
        WHERE r.namespace = p_namespace AND r.run_id = p_run_id AND r.status <> 'running';
    IF v_payload IS NULL OR octet_length(v_payload) > 7900 THEN
        v_payload := json_build_array(p_namespace, p_run_id)::text;
    END IF;
    PERFORM pg_notify('tether_closed', v_payload);
END $$;
