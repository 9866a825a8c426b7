-- Visibility: search attributes, and indexes to list runs by status, type, start time
-- and attribute (see tether/store/visibility.py). Mirrors
-- store/postgres/migrations/0006_visibility.sql.
--
-- One row per attribute value (a keyword list has one per element, idx its place).
-- Each type uses one value column: keyword and keyword_list str_value; int, bool and
-- datetime (Unix microseconds) int_value; float float_value. created_at is the run's,
-- copied so that one index filters by an attribute and orders the listing.
CREATE TABLE search_attributes (
    namespace    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    name         TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    type         TEXT NOT NULL,
    str_value    TEXT,
    int_value    INTEGER,
    float_value  REAL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (namespace, run_id, name, idx)
) WITHOUT ROWID;
CREATE INDEX search_attributes_str
    ON search_attributes (namespace, name, str_value, created_at, run_id)
    WHERE str_value IS NOT NULL;
CREATE INDEX search_attributes_int
    ON search_attributes (namespace, name, type, int_value, created_at, run_id)
    WHERE int_value IS NOT NULL;
CREATE INDEX search_attributes_float
    ON search_attributes (namespace, name, float_value, created_at, run_id)
    WHERE float_value IS NOT NULL;

CREATE INDEX runs_by_status ON runs (namespace, status, created_at, run_id);
CREATE INDEX runs_by_type ON runs (namespace, workflow_type, created_at, run_id);
CREATE INDEX runs_by_type_status ON runs (namespace, workflow_type, status, created_at, run_id);

-- Every path that appends a WorkflowStarted or SearchAttributesUpserted event (start,
-- signal-with-start, children, continue-as-new, a workflow task's commit) applies its
-- search_attributes here, in the same transaction. A name mapped to null is removed.
-- The instr() test is a byte search: most starts carry no attributes, and parsing
-- their JSON twice for nothing was a measurable share of a start.
CREATE TRIGGER events_search_attributes AFTER INSERT ON events
WHEN NEW.type IN ('WorkflowStarted', 'SearchAttributesUpserted')
    AND instr(CAST(NEW.attrs AS TEXT), '"search_attributes"') > 0
BEGIN
    DELETE FROM search_attributes
    WHERE namespace = NEW.namespace AND run_id = NEW.run_id
      AND name IN (SELECT a.key FROM json_each(CAST(NEW.attrs AS TEXT), '$.search_attributes') AS a);
    INSERT INTO search_attributes
        (namespace, run_id, name, idx, type, str_value, int_value, float_value, created_at)
    SELECT NEW.namespace, NEW.run_id, a.key, v.key, json_extract(a.value, '$.type'),
           CASE WHEN json_extract(a.value, '$.type') IN ('keyword', 'keyword_list')
                THEN v.value END,
           CASE WHEN json_extract(a.value, '$.type') IN ('int', 'bool', 'datetime')
                THEN v.value END,
           CASE WHEN json_extract(a.value, '$.type') = 'float' THEN v.value END,
           r.created_at
    FROM json_each(CAST(NEW.attrs AS TEXT), '$.search_attributes') AS a
    JOIN json_each(a.value, '$.values') AS v
    JOIN runs r ON r.namespace = NEW.namespace AND r.run_id = NEW.run_id
    WHERE a.type = 'object';
END;
