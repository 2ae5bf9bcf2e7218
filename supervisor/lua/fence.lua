-- fence.lua: the lease check that opens every fenced single write (create,
-- set, end, put_program, del_program). Not a script of its own: a script
-- says `--#include fence.lua` and the build puts these lines in its place.
--
-- KEYS[3]  the epoch key of the partition the request came from (INCR'd by
--          each supervisor that is assigned the partition)
-- ARGV[1]  the epoch the writer took on assignment; '0': unfenced
--
-- Keeps: a supervisor that lost its partition (dead, paused or partitioned
-- away) writes nothing. A write whose epoch is no longer the key's value is
-- answered with the error FENCED and the script stops before its first write.
if ARGV[1] ~= '0' and redis.call('GET', KEYS[3]) ~= ARGV[1] then
    return redis.error_reply('FENCED stale partition epoch')
end
