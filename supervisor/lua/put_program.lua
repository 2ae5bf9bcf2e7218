-- put_program.lua: put_program (sf_store_put_program).
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
-- KEYS[3]  the partition's epoch key (fence.lua)
-- ARGV[1]  the caller's epoch ('0': unfenced)    ARGV[2]  session TTL (s)
-- ARGV[3]  the program id                        ARGV[4]  its spec
--
-- Returns 1 stored, 0 no session (nothing written). A stale epoch: the error
-- FENCED, nothing written.
--
-- Keeps: a program is stored only into an existing session, and storing it
-- keeps the session alive (both TTLs refreshed).
--#include fence.lua
if redis.call('EXISTS', KEYS[1]) == 0 then
    return 0
end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
