-- del_program.lua: delete_program (sf_store_delete_program).
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
-- KEYS[3]  the partition's epoch key (fence.lua)
-- ARGV[1]  the caller's epoch ('0': unfenced)    ARGV[3]  the program id
--
-- Returns 1 deleted, 0 no such program, -1 no session. A stale epoch: the
-- error FENCED, nothing deleted.
--#include fence.lua
if redis.call('EXISTS', KEYS[1]) == 0 then
    return -1
end
return redis.call('HDEL', KEYS[2], ARGV[3])
