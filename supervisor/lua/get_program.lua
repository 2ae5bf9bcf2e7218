-- get_program.lua: get_program (sf_store_get_program). A read: unfenced.
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
-- ARGV[2]  session TTL (s)                       ARGV[3]  the program id
--
-- Returns {state, spec, version}: spec nil when there is no such program;
-- version, of the state read, as a commit's compare-and-set wants it ('0'
-- before any versioned write); {nil, nil} when there is no session.
--
-- Keeps: state and spec come from one moment; reading keeps the session alive
-- (both TTLs refreshed).
local s = redis.call('GET', KEYS[1])
if not s then
    return {false, false}
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local sv = redis.call('HMGET', KEYS[2], ARGV[3], '')
return {s, sv[1], sv[2] or '0'}
