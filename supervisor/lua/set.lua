-- set.lua: set_state (sf_store_set_state).
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs (field '': the version)
-- KEYS[3]  the partition's epoch key (fence.lua)
-- ARGV[1]  the caller's epoch ('0': unfenced)    ARGV[2]  session TTL (s)
-- ARGV[3]  the new state
--
-- Returns OK, or nil when there is no session (nothing written). A stale
-- epoch: the error FENCED, nothing written.
--
-- Keeps: only an existing session is written (SET XX: never recreated), and
-- every write moves the version on, so a run that read the state before it
-- fails its compare-and-set (commits.lua).
--#include fence.lua
local ok = redis.call('SET', KEYS[1], ARGV[3], 'XX', 'EX', ARGV[2])
if ok then
    redis.call('HINCRBY', KEYS[2], '', 1)
    redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return ok
