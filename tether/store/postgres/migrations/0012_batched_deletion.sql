-- Deleting a namespace in bounded batches, and sweeping idle fair flows. Mirrors
-- store/sqlite/migrations/0012_batched_deletion.sql (the SQLite store runs the same
-- logic in store/sqlite/namespaces.py).
--
-- Deletion first marks the namespace (deleting_since, one short transaction); from
-- then on it is invisible (not read, listed or updated), it accepts no new run (a
-- trigger) and no signal, cancel, update or reset (SQLSTATE TT004, which the store
-- reports as NamespaceNotFound), and claims, timers and next_due skip its tasks. tether.delete_namespace_batch then removes at most p_limit of its rows per
-- call, runs first, and the namespace row itself once nothing else is left. Whoever
-- calls it again after a crash (another delete, or a worker's retention sweeper)
-- finishes the job.
ALTER TABLE tether.namespaces ADD COLUMN deleting_since float8;
CREATE INDEX namespaces_deleting ON tether.namespaces (name) WHERE deleting_since IS NOT NULL;

-- The one-transaction deletion of 0004 is replaced by the batches below.
DROP FUNCTION tether.delete_namespace(text);

-- True, or SQLSTATE TT004 if the namespace is being deleted. Queries that give input
-- to a run call it first (in their WHERE), in the same statement.
CREATE FUNCTION tether.usable_namespace(p_namespace text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tether.namespaces
               WHERE name = p_namespace AND deleting_since IS NOT NULL) THEN
        RAISE EXCEPTION 'namespace % is being deleted', p_namespace USING ERRCODE = 'TT004';
    END IF;
    RETURN true;
END $$;

-- The namespaces given, without those being deleted (for claims, timers, next_due).
CREATE FUNCTION tether.usable_namespaces(p_namespaces text[]) RETURNS text[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(SELECT n FROM unnest(p_namespaces) AS n WHERE NOT EXISTS (
        SELECT 1 FROM tether.namespaces s WHERE s.name = n AND s.deleting_since IS NOT NULL))
$$;

-- The shares of a fair claim, 0 for a namespace being deleted (which then claims none).
CREATE FUNCTION tether.usable_shares(p_namespaces text[], p_shares integer[]) RETURNS integer[]
LANGUAGE sql STABLE AS $$
    SELECT ARRAY(
        SELECT CASE WHEN EXISTS (SELECT 1 FROM tether.namespaces s
                                 WHERE s.name = u.n AND s.deleting_since IS NOT NULL)
               THEN 0 ELSE u.share END
        FROM unnest(p_namespaces, p_shares) WITH ORDINALITY AS u (n, share, i) ORDER BY u.i)
$$;

-- Every new run (a start, signal- or update-with-start, a child, continue-as-new, a
-- reset) is refused in a namespace being deleted (SQLSTATE TT004).
CREATE FUNCTION tether.refuse_deleting_namespace() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tether.namespaces
               WHERE name = NEW.namespace AND deleting_since IS NOT NULL) THEN
        RAISE EXCEPTION 'namespace % is being deleted', NEW.namespace USING ERRCODE = 'TT004';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER runs_refuse_deleting BEFORE INSERT ON tether.runs
    FOR EACH ROW EXECUTE FUNCTION tether.refuse_deleting_namespace();

-- Mark a namespace as being deleted (again is harmless); false if there is none.
CREATE FUNCTION tether.begin_namespace_deletion(p_namespace text) RETURNS boolean
LANGUAGE sql AS $$
    WITH marked AS (
        UPDATE tether.namespaces SET deleting_since = coalesce(deleting_since, tether.epoch())
        WHERE name = p_namespace RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM marked)
$$;

-- Remove at most p_limit rows of a namespace being deleted, runs first: a writer locks
-- a run before writing for it, so once the run's row is gone nothing more is added
-- for it (and a writer holding it meanwhile is waited for). When a call finds nothing
-- left, it removes the namespace row and returns true (true also if it is gone
-- already); NULL if the namespace is not being deleted. Rows are locked before they
-- are removed, so two callers at once each remove different rows, and "nothing left"
-- is never concluded from rows the other one was removing.
CREATE FUNCTION tether.delete_namespace_batch(p_namespace text, p_limit integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_since float8;
    v_left integer := p_limit;
    v_n integer;
    v_table text;
BEGIN
    SELECT deleting_since INTO v_since FROM tether.namespaces WHERE name = p_namespace;
    IF NOT FOUND THEN
        RETURN true;
    END IF;
    IF v_since IS NULL THEN
        RETURN NULL;
    END IF;
    FOR v_table IN SELECT t.name FROM tether.namespaced_tables(false) AS t (name)
                   ORDER BY t.name <> 'runs', t.name LOOP
        EXIT WHEN v_left <= 0;
        EXECUTE format('DELETE FROM tether.%I WHERE ctid = ANY (ARRAY('
                       'SELECT ctid FROM tether.%I WHERE namespace = $1 LIMIT $2 FOR UPDATE))',
                       v_table, v_table) USING p_namespace, v_left;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
    END LOOP;
    IF v_left < p_limit THEN
        RETURN false;
    END IF;
    BEGIN
        DELETE FROM tether.namespaces WHERE name = p_namespace;
    EXCEPTION WHEN foreign_key_violation THEN
        RETURN false;  -- a run that was being started committed meanwhile
    END;
    RETURN true;
END $$;

-- Sweep idle fair flows of a namespace (at most p_limit rows; returns how many).
--
-- A key's row only carries its last pass; its next task gets
--   max(last pass + 1/weight, clock + 1/weight).
-- A key with no task queued or running (leased, or waiting for a retry) competes with
-- no one: like a new key, it may restart from the queue's clock, which is what its
-- next task gets once the row is gone (start-time fair queueing restarts a flow that
-- went idle at the virtual time). So a key row is removed when no workflow or activity
-- task of the (queue, kind, priority) belongs to a run of that key; a queue's clock
-- (key '') when, besides, no key row of it is left and no keyed task waits or runs
-- in it. A key given a task meanwhile has a new last pass and is kept.
CREATE FUNCTION tether.sweep_fair_flows(p_namespace text, p_limit integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_keys integer;
    v_clocks integer;
BEGIN
    WITH busy AS MATERIALIZED (
        SELECT DISTINCT t.task_queue, t.kind, t.priority, f.fairness_key
        FROM tether.tasks t
        JOIN tether.run_fairness f ON f.namespace = t.namespace AND f.run_id = t.run_id
        WHERE t.namespace = p_namespace AND t.kind <> 'timer' AND f.fairness_key IS NOT NULL
    ), idle AS (
        SELECT k.task_queue, k.kind, k.priority, k.fairness_key, k.last_pass
        FROM tether.fair_flows k
        WHERE k.namespace = p_namespace AND k.fairness_key <> ''
          AND NOT EXISTS (SELECT 1 FROM busy b
                          WHERE b.task_queue = k.task_queue AND b.kind = k.kind
                            AND b.priority = k.priority AND b.fairness_key = k.fairness_key)
        LIMIT p_limit
    )
    DELETE FROM tether.fair_flows k USING idle i
    WHERE k.namespace = p_namespace AND k.task_queue = i.task_queue AND k.kind = i.kind
      AND k.priority = i.priority AND k.fairness_key = i.fairness_key
      AND k.last_pass = i.last_pass;
    GET DIAGNOSTICS v_keys = ROW_COUNT;
    WITH idle AS (
        SELECT c.task_queue, c.kind, c.priority, c.last_pass FROM tether.fair_flows c
        WHERE c.namespace = p_namespace AND c.fairness_key = ''
          AND NOT EXISTS (SELECT 1 FROM tether.fair_flows k
                          WHERE k.namespace = c.namespace AND k.task_queue = c.task_queue
                            AND k.kind = c.kind AND k.priority = c.priority
                            AND k.fairness_key <> '')
          AND NOT EXISTS (SELECT 1 FROM tether.tasks t
                          WHERE t.kind = c.kind AND t.namespace = c.namespace
                            AND t.task_queue = c.task_queue AND t.priority = c.priority
                            AND t.pass > 0)
        LIMIT greatest(p_limit - v_keys, 0)
    )
    DELETE FROM tether.fair_flows c USING idle i
    WHERE c.namespace = p_namespace AND c.task_queue = i.task_queue AND c.kind = i.kind
      AND c.priority = i.priority AND c.fairness_key = '' AND c.last_pass = i.last_pass;
    GET DIAGNOSTICS v_clocks = ROW_COUNT;
    RETURN v_keys + v_clocks;
END $$;
