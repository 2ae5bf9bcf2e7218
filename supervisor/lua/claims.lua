-- claims.lua: the claims of one loop turn, batched (sf_store_claim).
--
-- Item i (0-based) of the batch, k = 6i, a = 8i + 1:
-- KEYS[k+1]  P:{S}:state    KEYS[k+2]  P:{S}:programs
-- KEYS[k+3]  the partition's epoch key (unused: the epoch rides in the claim)
-- KEYS[k+4]  P:{S}:req:ID   the request's claim: 'P<owner>@<epoch>' while it runs
-- KEYS[k+5]  P:done:{G}:T/N the partition's reply records (request -> reply)
-- KEYS[k+6]  P:order:...    (unused here: commits.lua)
-- ARGV[a+1]  the claimer's epoch ('0': unfenced)    ARGV[a+2]  its owner id
-- ARGV[a+3]  claim TTL (ms)    ARGV[a+4]  the program to execute ('': none)
-- ARGV[a+5]  the request's name in the records ('<session length>:<session><id>')
-- and ARGV[1], shared: session TTL (s).
--
-- Returns per item (each_item.lua):
--   {0, ''}             claimed
--   {1, reply}          answered before: the remembered reply
--   {2, 'owner@epoch'}  running elsewhere
-- A claim for an execute (program not '') also reads, in the same step, the
-- session's state, the program's spec and the state's version (for the
-- commit's compare-and-set): {0, '', state, spec, version}, with
-- {0, '', nil, nil, nil} when there is no session (spec nil: no such program).
--
-- Keeps: one run of a request at a time and one answer per request while it
-- can come back: a request answered before is answered from its record; else
-- its claim key holds one claim. A claim records its owner's partition epoch:
-- a claim made under an older epoch belongs to a supervisor that lost the
-- partition (dead or fenced), so the new owner takes it over at once instead
-- of waiting for it to expire. Its own claim, met again, is renewed.
local function item(i)
    local k, a = 6 * i, 8 * i + 1
    local st, pg, rq, dn = KEYS[k + 1], KEYS[k + 2], KEYS[k + 4], KEYS[k + 5]
    local ep, prog = ARGV[a + 1], ARGV[a + 4]
    local done = redis.call('HGET', dn, ARGV[a + 5])
    if done then
        return {1, done}
    end
    local mine = 'P' .. ARGV[a + 2] .. '@' .. ep
    -- one command for a new request: set the claim unless there is one, and see it
    local v = redis.call('SET', rq, mine, 'NX', 'PX', ARGV[a + 3], 'GET')
    if v then
        if string.sub(v, 1, 1) == 'R' then
            return {1, string.sub(v, 2)} -- a record as earlier versions kept it, in the claim key
        end
        if v ~= mine and (ep == '0' or
                tonumber(string.match(v, '@(%d+)$') or '0') >= tonumber(ep)) then
            return {2, string.sub(v, 2)}
        end
        redis.call('SET', rq, mine, 'PX', ARGV[a + 3])
    end
    if prog == '' then
        return {0, ''}
    end
    local s = redis.call('GETEX', st, 'EX', ARGV[1])
    if not s then
        return {0, '', false, false, false}
    end
    redis.call('EXPIRE', pg, ARGV[1])
    local sv = redis.call('HMGET', pg, prog, '')
    return {0, '', s, sv[1], sv[2] or '0'}
end
--#include each_item.lua
