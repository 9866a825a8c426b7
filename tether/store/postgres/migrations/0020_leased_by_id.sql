-- Leased tasks indexed down to the task. A completion fences its task by id, namespace,
-- kind and an owner set; the planner may serve that through tasks_leased (namespace,
-- kind) as well as through the primary key, and on a young table (no statistics yet,
-- see store/postgres/planner_stats.py) it took tasks_leased: every fence then read all
-- the namespace's leased tasks of its kind (71 a fence in W1, 9.5 of a batch's 10 ms).
-- With the id in the index, either index finds the one task. Counts of leased tasks by
-- namespace and kind read the same prefix as before.
DROP INDEX tether.tasks_leased;
CREATE INDEX tasks_leased ON tether.tasks (namespace, kind, id) WHERE owner IS NOT NULL;
