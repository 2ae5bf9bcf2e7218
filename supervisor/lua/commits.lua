-- commits.lua: the commits of one loop turn, batched (sf_store_commit).
--
-- Item i (0-based) of the batch:
-- KEYS[4i+1]  P:{S}:state    KEYS[4i+2]  P:{S}:programs (field '': the version)
-- KEYS[4i+3]  the partition's epoch key
-- KEYS[4i+4]  P:{S}:req:ID   the request's dedupe key (claims.lua)
-- ARGV[4i+2]  the committer's epoch ('0': unfenced)    ARGV[4i+3]  the reply
-- ARGV[4i+4]  dedupe TTL (s), or 'ttl/version': the version the run read
-- ARGV[4i+5]  the new state ('': the state is not written)
-- and ARGV[1], shared: session TTL (s).
--
-- Returns per item (each_item.lua): 1 done; 0 the session is gone (nothing
-- written); -1 fenced: a stale epoch (nothing written); -2 conflict: the state
-- changed since the run read it (nothing written).
--
-- Keeps, per item: the reply is remembered for the dedupe window (replacing
-- the claim) and, with a state, the state written, both in one step; an item
-- answered 0, -1 or -2 writes nothing. Fencing: as fence.lua, for each item
-- (a partition's epoch is read once per batch). Compare-and-set: with a
-- version, the state is written only over the version the run read; without
-- one the write is unconditional. Either way a written state moves the version
-- on, so every run that read the state before this write conflicts.
local epochs = {} -- a partition's epoch is read once per batch
local function item(i)
    local ep, state, ttl = ARGV[4 * i + 2], ARGV[4 * i + 5], ARGV[4 * i + 4]
    local rv
    local at = string.find(ttl, '/', 1, true)
    if at then
        rv = string.sub(ttl, at + 1)
        ttl = string.sub(ttl, 1, at - 1)
    end
    if ep ~= '0' then
        local k = KEYS[4 * i + 3]
        if epochs[k] == nil then
            epochs[k] = redis.call('GET', k)
        end
        if epochs[k] ~= ep then
            return -1
        end
    end
    if state ~= '' then
        local pg = KEYS[4 * i + 2]
        -- compare-and-set: the state is written only over the version the run read
        if rv and (redis.call('HGET', pg, '') or '0') ~= rv then
            return -2
        end
        if not redis.call('SET', KEYS[4 * i + 1], state, 'XX', 'EX', ARGV[1]) then
            return 0
        end
        -- every state write moves the version on, so any run that read before it conflicts
        redis.call('HINCRBY', pg, '', 1)
        redis.call('EXPIRE', pg, ARGV[1])
    end
    redis.call('SET', KEYS[4 * i + 4], 'R' .. ARGV[4 * i + 3], 'EX', ttl)
    return 1
end
--#include each_item.lua
