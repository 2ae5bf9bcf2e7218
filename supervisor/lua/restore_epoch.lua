-- restore_epoch.lua: a lease that Redis lost, taken back (sf_store_restore_epoch).
--
-- KEYS[1]  the partition's epoch key    ARGV[1]  the epoch the caller took
--
-- Returns 1 when the key held less than ARGV[1] (or nothing) and now holds it;
-- 0 when it holds ARGV[1] or more (a newer owner took the partition: the
-- caller stays fenced).
--
-- Keeps: an epoch key never goes down. It can only have gone back when Redis
-- lost writes (a failover without redis.min_replicas, a restart from an AOF
-- fsync'd every second, a restore): the caller, which bumped it to ARGV[1],
-- is then the newest owner that key has seen, and setting it back fences
-- every older one again. Two owners that both lost their bump converge on the
-- higher epoch.
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v < tonumber(ARGV[1]) then
    redis.call('SET', KEYS[1], ARGV[1])
    return 1
end
return 0
