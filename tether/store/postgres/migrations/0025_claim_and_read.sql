-- A worker's claim of workflow tasks, and for each claimed run of at most p_max_events
-- events what the worker reads next (the history from seq 0, the pending updates, the
-- last seq; as READ_FOR_TASKS in updates.py), in one call: one round trip less between
-- a run's new input and its code running on a worker of another process.
--
-- The read is a statement of its own, after the claim's: its snapshot is taken after
-- the claim's, so it sees the events that made each claimed task ready (they committed
-- with the task). Read in the claim's own statement, it could miss them: a task
-- committed while that statement ran is claimed, but not its event.
CREATE FUNCTION tether.claim_workflow_tasks_read(
    p_owner text, p_namespaces text[], p_queues text[], p_limit integer, p_lease float8,
    p_max_events integer
) RETURNS TABLE (
    o_id bigint, o_namespace text, o_run_id text, o_workflow_id text, o_workflow_type text,
    o_task_queue text, o_token bigint, o_last_seq bigint, o_seqs bigint[], o_types text[],
    o_tss float8[], o_attrs text[], o_ids text[], o_created float8[], o_calls text[]
) LANGUAGE plpgsql
-- See 0017, "Plans".
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
SET jit = off AS $$
DECLARE
    v_claimed tether.claimed_task[];
BEGIN
    SELECT array_agg(c) INTO v_claimed
        FROM tether.claim_ready('workflow', p_owner, tether.usable_namespaces(p_namespaces),
                                p_queues, p_limit, p_lease, tether.epoch()) AS c;
    RETURN QUERY
    SELECT c.id, c.namespace, c.run_id, c.workflow_id, c.workflow_type, c.task_queue,
           c.token, r.last_seq, e.seqs, e.types, e.tss, e.attrs, u.ids, u.created, u.calls
    FROM unnest(v_claimed) WITH ORDINALITY AS c
    LEFT JOIN tether.runs r ON r.namespace = c.namespace AND r.run_id = c.run_id
        AND r.last_seq <= p_max_events
    LEFT JOIN LATERAL (
        SELECT array_agg(ev.seq ORDER BY ev.seq) AS seqs,
               array_agg(ev.type ORDER BY ev.seq) AS types,
               array_agg(ev.ts ORDER BY ev.seq) AS tss,
               array_agg(ev.attrs::text ORDER BY ev.seq) AS attrs
        FROM tether.events ev
        WHERE r.run_id IS NOT NULL AND ev.namespace = c.namespace AND ev.run_id = c.run_id
    ) AS e ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(up.update_id ORDER BY up.arrival) AS ids,
               array_agg(up.created_at ORDER BY up.arrival) AS created,
               array_agg(json_build_array(up.name, up.args)::text ORDER BY up.arrival) AS calls
        FROM tether.updates up
        WHERE r.run_id IS NOT NULL AND up.namespace = c.namespace AND up.run_id = c.run_id
          AND up.status = 'pending'
    ) AS u ON true
    ORDER BY c.ordinality;
END $$;
