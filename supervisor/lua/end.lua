-- end.lua: end_session (sf_store_end_session).
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
-- KEYS[3]  the partition's epoch key (fence.lua)
-- KEYS[4]  P:sessions     the session index (create.lua)
-- ARGV[1]  the caller's epoch ('0': unfenced)    ARGV[3]  the session id S
--
-- Returns how many of the session's two keys it removed (0: no session). A
-- stale epoch: the error FENCED, nothing removed.
--
-- Keeps: the session leaves the index with its keys, in one step.
--#include fence.lua
redis.call('ZREM', KEYS[4], ARGV[3])
return redis.call('DEL', KEYS[1], KEYS[2])
