-- get.lua: get_state (sf_store_get_state). A read: unfenced.
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
-- ARGV[2]  session TTL (s)
--
-- Returns the state, or nil when there is no session.
--
-- Keeps: reading a session keeps it alive (both TTLs refreshed).
local v = redis.call('GET', KEYS[1])
if v then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return v
