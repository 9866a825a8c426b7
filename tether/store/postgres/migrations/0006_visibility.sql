-- Visibility: search attributes, and indexes to list runs by status, type, start time
-- and attribute (see tether/store/visibility.py). Mirrors
-- store/sqlite/migrations/0006_visibility.sql.
--
-- One row per attribute value (a keyword list has one per element, idx its place).
-- Each type uses one value column: keyword and keyword_list str_value; int, bool and
-- datetime (Unix microseconds) int_value; float float_value. created_at is the run's,
-- copied so that one index filters by an attribute and orders the listing.
CREATE TABLE tether.search_attributes (
    namespace    text NOT NULL,
    run_id       text NOT NULL,
    name         text NOT NULL,
    idx          integer NOT NULL,
    type         text NOT NULL,
    str_value    text,
    int_value    bigint,
    float_value  float8,
    created_at   float8 NOT NULL,
    PRIMARY KEY (namespace, run_id, name, idx)
);
CREATE INDEX search_attributes_str
    ON tether.search_attributes (namespace, name, str_value, created_at, run_id)
    WHERE str_value IS NOT NULL;
CREATE INDEX search_attributes_int
    ON tether.search_attributes (namespace, name, type, int_value, created_at, run_id)
    WHERE int_value IS NOT NULL;
CREATE INDEX search_attributes_float
    ON tether.search_attributes (namespace, name, float_value, created_at, run_id)
    WHERE float_value IS NOT NULL;

CREATE INDEX runs_by_status ON tether.runs (namespace, status, created_at, run_id);
CREATE INDEX runs_by_type ON tether.runs (namespace, workflow_type, created_at, run_id);
CREATE INDEX runs_by_type_status
    ON tether.runs (namespace, workflow_type, status, created_at, run_id);

-- Every path that appends a WorkflowStarted or SearchAttributesUpserted event (start,
-- signal-with-start, children, continue-as-new, a workflow task's commit) applies its
-- search_attributes here, in the same transaction. A name mapped to null is removed.
CREATE FUNCTION tether.apply_search_attributes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_attrs json := NEW.attrs -> 'search_attributes';
BEGIN
    IF v_attrs IS NULL OR json_typeof(v_attrs) <> 'object' THEN
        RETURN NULL;
    END IF;
    DELETE FROM tether.search_attributes s
        WHERE s.namespace = NEW.namespace AND s.run_id = NEW.run_id
          AND s.name IN (SELECT json_object_keys(v_attrs));
    INSERT INTO tether.search_attributes
        (namespace, run_id, name, idx, type, str_value, int_value, float_value, created_at)
    SELECT NEW.namespace, NEW.run_id, a.key, v.idx - 1, a.value ->> 'type',
           CASE WHEN a.value ->> 'type' IN ('keyword', 'keyword_list')
                THEN v.value #>> '{}' END,
           CASE WHEN a.value ->> 'type' IN ('int', 'bool', 'datetime')
                THEN (v.value #>> '{}')::bigint END,
           CASE WHEN a.value ->> 'type' = 'float' THEN (v.value #>> '{}')::float8 END,
           r.created_at
    FROM json_each(v_attrs) AS a
    CROSS JOIN LATERAL json_array_elements(
        CASE WHEN json_typeof(a.value) = 'object' THEN a.value -> 'values' ELSE '[]' END)
        WITH ORDINALITY AS v (value, idx)
    JOIN tether.runs r ON r.namespace = NEW.namespace AND r.run_id = NEW.run_id;
    RETURN NULL;
END $$;

CREATE TRIGGER events_search_attributes AFTER INSERT ON tether.events
    FOR EACH ROW WHEN (NEW.type IN ('WorkflowStarted', 'SearchAttributesUpserted')
                       AND strpos(NEW.attrs::text, '"search_attributes"') > 0)
    EXECUTE FUNCTION tether.apply_search_attributes();
