-- create.lua: create_session (sf_store_create_session).
--
-- KEYS[1]  P:{S}:state     the session's state
-- KEYS[2]  P:{S}:programs  its programs (hash; field '': the state's version)
-- KEYS[3]  the partition's epoch key (fence.lua)
-- KEYS[4]  P:sessions      the session index (sorted set: session id -> when
--                          it expires, in ms)
-- ARGV[1]  the caller's epoch ('0': unfenced)    ARGV[2]  session TTL (s)
-- ARGV[3]  the initial state                     ARGV[4]  max_sessions (0: no limit)
-- ARGV[5]  the session id S                      ARGV[6]  the key prefix 'P:'
--
-- Returns {1, sessions stored} when created, {0, sessions stored} when
-- refused: max_sessions are stored and S is not one of them. A stale epoch:
-- the error FENCED, nothing written.
--
-- Keeps: max_sessions counts live sessions. A create first prunes the index:
-- an entry past its time whose state key still lives (it was used since)
-- gets its real expiry, the others go. Pruning is bounded per call (100
-- entries, up to 10 rounds when at the limit), so a create costs O(expired)
-- amortized and nothing else pays for the index. A (re)created session
-- starts with no programs and a version no earlier incarnation had, so a
-- commit that read an older incarnation fails its compare-and-set
-- (commits.lua).
--#include fence.lua
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local max = tonumber(ARGV[4])
local rounds = 0
local n
repeat
    rounds = rounds + 1
    local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 100)
    for _, m in ipairs(due) do
        local left = redis.call('PTTL', ARGV[6] .. '{' .. m .. '}:state')
        if left > 0 then
            redis.call('ZADD', KEYS[4], now + left, m)
        else
            redis.call('ZREM', KEYS[4], m)
        end
    end
    n = redis.call('ZCARD', KEYS[4])
until #due < 100 or max == 0 or n < max or rounds >= 10
if max > 0 and n >= max and not redis.call('ZSCORE', KEYS[4], ARGV[5]) then
    return {0, n}
end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
redis.call('DEL', KEYS[2])
-- a new version (microseconds), never one an older incarnation had
redis.call('HSET', KEYS[2], '', t[1] .. string.format('%06d', tonumber(t[2])))
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]) * 1000, ARGV[5])
return {1, redis.call('ZCARD', KEYS[4])}
