-- claims.lua: the claims of one loop turn, batched (sf_store_claim).
--
-- Item i (0-based) of the batch:
-- KEYS[4i+1]  P:{S}:state    KEYS[4i+2]  P:{S}:programs
-- KEYS[4i+3]  the partition's epoch key (unused: the epoch rides in the claim)
-- KEYS[4i+4]  P:{S}:req:ID   the request's dedupe key: 'P<owner>@<epoch>'
--                            while claimed, 'R<reply>' once answered
-- ARGV[4i+2]  the claimer's epoch ('0': unfenced)    ARGV[4i+3]  its owner id
-- ARGV[4i+4]  claim TTL (ms)    ARGV[4i+5]  the program to execute ('': none)
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
-- Keeps: one run of a request at a time and one answer per dedupe window:
-- its request key holds one claim or the reply. A claim records its owner's
-- partition epoch: a claim made under an older epoch belongs to a supervisor
-- that lost the partition (dead or fenced), so the new owner takes it over at
-- once instead of waiting for it to expire. Its own claim, met again, is
-- renewed.
local function item(i)
    local st, pg, rq = KEYS[4 * i + 1], KEYS[4 * i + 2], KEYS[4 * i + 4]
    local ep, prog = ARGV[4 * i + 2], ARGV[4 * i + 5]
    local mine = 'P' .. ARGV[4 * i + 3] .. '@' .. ep
    -- one command for a new request: set the claim unless there is one, and see it
    local v = redis.call('SET', rq, mine, 'NX', 'PX', ARGV[4 * i + 4], 'GET')
    if v then
        if string.sub(v, 1, 1) == 'R' then
            return {1, string.sub(v, 2)}
        end
        if v ~= mine and (ep == '0' or
                tonumber(string.match(v, '@(%d+)$') or '0') >= tonumber(ep)) then
            return {2, string.sub(v, 2)}
        end
        redis.call('SET', rq, mine, 'PX', ARGV[4 * i + 4])
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
