-- A batch of one operation is sent as a call of the operation's own function (commits.py):
-- the batch function around it (unpack an array of composites, loop, a subtransaction
-- to catch a refusal, pack a row back) is work the call does not need: W2, where every
-- write goes alone, spent 4% less PostgreSQL time and 3% less wall time without it
-- (medians of 8 interleaved runs). A refusal is then the statement's own error, as
-- the batch's row would have given it.
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
