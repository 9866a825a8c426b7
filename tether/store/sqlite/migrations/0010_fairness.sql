-- Priority and fairness keys within a namespace. Mirrors
-- store/postgres/migrations/0010_fairness.sql.
--
-- A run may carry {"priority", "key", "weight"} under "fairness" in its WorkflowStarted
-- event; a trigger copies it to run_fairness, and every workflow or activity task of
-- the run takes its priority and a pass from it when inserted (another trigger), so
-- no writer has to know. Claims take tasks by (priority, pass, visible_at): a lower
-- priority first, then the lowest pass. Tasks of runs without a key have pass 0 and
-- so keep their plain FIFO order ahead of keyed ones of their priority.
--
-- Passes are start-time fair queueing: a key's next task gets
--   max(the key's last pass, the queue's clock) + 1 / weight,
-- where the clock is the lowest pass of the queue's unleased keyed tasks, as last
-- seen (it never goes back). A key that floods the queue pushes only its own passes
-- ahead; a key that arrives later starts at the clock, next to the head.
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
ALTER TABLE tasks ADD COLUMN pass REAL NOT NULL DEFAULT 0;
DROP INDEX tasks_ready;
CREATE INDEX tasks_ready ON tasks (kind, namespace, task_queue, priority, pass, visible_at);
-- Timers have neither: they are due by time alone.
CREATE INDEX tasks_timers ON tasks (namespace, task_queue, visible_at) WHERE kind = 'timer';

CREATE TABLE run_fairness (
    namespace     TEXT NOT NULL,
    run_id        TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    fairness_key  TEXT,
    weight        REAL NOT NULL,
    PRIMARY KEY (namespace, run_id)
) WITHOUT ROWID;

-- One row per (queue, kind, priority, key) with the key's last pass; key '' holds the
-- queue's clock.
CREATE TABLE fair_flows (
    namespace     TEXT NOT NULL,
    task_queue    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    fairness_key  TEXT NOT NULL,
    last_pass     REAL NOT NULL,
    PRIMARY KEY (namespace, task_queue, kind, priority, fairness_key)
) WITHOUT ROWID;

CREATE TRIGGER run_fairness_from_start AFTER INSERT ON events
WHEN NEW.type = 'WorkflowStarted' AND instr(CAST(NEW.attrs AS TEXT), '"fairness"') > 0
    AND json_extract(CAST(NEW.attrs AS TEXT), '$.fairness') IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO run_fairness (namespace, run_id, priority, fairness_key, weight)
    VALUES (
        NEW.namespace, NEW.run_id,
        coalesce(json_extract(CAST(NEW.attrs AS TEXT), '$.fairness.priority'), 2),
        json_extract(CAST(NEW.attrs AS TEXT), '$.fairness.key'),
        coalesce(json_extract(CAST(NEW.attrs AS TEXT), '$.fairness.weight'), 1.0)
    );
END;

CREATE TRIGGER tasks_fairness AFTER INSERT ON tasks
WHEN NEW.kind <> 'timer' AND EXISTS (
    SELECT 1 FROM run_fairness f WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id
)
BEGIN
    -- The clock moves up to the head of the keyed tasks waiting now.
    INSERT INTO fair_flows (namespace, task_queue, kind, priority, fairness_key, last_pass)
    SELECT NEW.namespace, NEW.task_queue, NEW.kind, f.priority, '', coalesce((
        SELECT min(t.pass) FROM tasks t
        WHERE t.kind = NEW.kind AND t.namespace = NEW.namespace
          AND t.task_queue = NEW.task_queue AND t.priority = f.priority
          AND t.pass > 0 AND t.owner IS NULL AND t.id <> NEW.id), 0)
    FROM run_fairness f
    WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id AND f.fairness_key IS NOT NULL
    ON CONFLICT DO UPDATE SET last_pass = max(last_pass, excluded.last_pass);
    -- The key's pass: after its own last one, and not before the clock.
    INSERT INTO fair_flows (namespace, task_queue, kind, priority, fairness_key, last_pass)
    SELECT NEW.namespace, NEW.task_queue, NEW.kind, f.priority, f.fairness_key, (
        SELECT c.last_pass FROM fair_flows c
        WHERE c.namespace = NEW.namespace AND c.task_queue = NEW.task_queue
          AND c.kind = NEW.kind AND c.priority = f.priority AND c.fairness_key = ''
    ) + 1.0 / f.weight
    FROM run_fairness f
    WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id AND f.fairness_key IS NOT NULL
    ON CONFLICT DO UPDATE SET last_pass = max(
        last_pass + 1.0 / (SELECT f.weight FROM run_fairness f
                           WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id),
        excluded.last_pass);
    UPDATE tasks SET
        priority = (SELECT f.priority FROM run_fairness f
                    WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id),
        pass = coalesce((
            SELECT k.last_pass FROM run_fairness f JOIN fair_flows k
                ON k.namespace = f.namespace AND k.task_queue = NEW.task_queue
               AND k.kind = NEW.kind AND k.priority = f.priority
               AND k.fairness_key = f.fairness_key
            WHERE f.namespace = NEW.namespace AND f.run_id = NEW.run_id), 0)
    WHERE id = NEW.id;
END;
