-- A batch of one operation is sent as a call of the operation's own function (commits.py):
-- the batch function around it (unpack an array of composites, loop, a subtransaction
-- to catch a refusal, pack a row back) cost more than the call itself: W2, where every
-- write goes alone, spent 5-15% less PostgreSQL time and 4-10% less of its own without
-- it. A refusal is then the statement's own error, as in the batch.
--
-- Called alone, these functions plan with the settings the batch functions give their
-- statements (0017, "Plans"): only index lookups, whatever a young table's statistics
-- say, and no JIT.
ALTER FUNCTION tether.complete_workflow_task(
    text, text, bigint, bigint, float8, text[], text[], integer[], text[], text[], text[],
    text[], text[], integer[], float8[], integer[], text, text, text)
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    SET jit = off;
ALTER FUNCTION tether.advance_after_activity(
    text, text, bigint, bigint, bigint, float8, float8, text[], text[], integer[], text[],
    text[], text[], text[], text[], integer[], float8[], integer[], text, text, text)
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    SET jit = off;
ALTER FUNCTION tether.finish_activity(
    text, text, bigint, bigint, text, text, text, text, text[], float8)
    SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off
    SET jit = off;
