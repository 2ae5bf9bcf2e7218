-- commits.lua: the commits of one loop turn, batched (sf_store_commit).
--
-- Item i (0-based) of the batch, k = 6i, a = 8i + 1:
-- KEYS[k+1]  P:{S}:state    KEYS[k+2]  P:{S}:programs (field '': the version)
-- KEYS[k+3]  the partition's epoch key
-- KEYS[k+4]  P:{S}:req:ID   the request's claim (claims.lua), removed here
-- KEYS[k+5]  P:done:{G}:T/N  the partition's reply records: request -> reply
-- KEYS[k+6]  P:order:{G}:T/N the same requests as '<offset> <request>', in the
--                            order their commits wrote them (a list)
-- ARGV[a+1]  the committer's epoch ('0': unfenced)    ARGV[a+2]  the reply
-- ARGV[a+3]  the version the run read ('': none to check)
-- ARGV[a+4]  the new state ('': the state is not written)
-- ARGV[a+5]  the request's name in the records    ARGV[a+6]  its Kafka offset
-- ARGV[a+7]  settled: records of offsets below it may go ('0': none)
-- ARGV[a+8]  flags: 'c' the request was claimed (its claim key goes); 't' its run used
--            a kept copy of the state, not a claim's read: the session's keys get their
--            TTL again (a claim refreshed them otherwise)
-- and ARGV[1], shared: session TTL (s).
--
-- Returns per item (each_item.lua): 1 done; 0 the session is gone (nothing
-- written); -1 fenced: a stale epoch (nothing written); -2 conflict: the state
-- changed since the run read it (nothing written); {3, reply}: the request
-- was answered before (a client produced it again): nothing written.
--
-- Keeps, per item: the reply is remembered (replacing the claim) and, with a
-- state, the state written, both in one step; an item answered anything but 1
-- writes nothing. A request answered before gets that answer whatever the
-- version; else, with a version, nothing is written unless the state is still
-- at it (compare-and-set). A request is answered once while its record lasts, claimed
-- or not. Fencing: as fence.lua, for each item (a partition's epoch is read
-- once per batch). Compare-and-set: with a version, the item writes only over
-- the version the run read; without one it is unconditional. Either way a
-- written state moves the version on, so every run that read the state before
-- this write conflicts.
--
-- Bounded: the records of a partition below `settled` (offsets the group has
-- committed, so Kafka never hands them out again, and older than the retry
-- window) are dropped from the head of its list, up to 200 per partition and
-- batch and up to the first one not below it, before the first item of that
-- partition is written. Commits come in nearly offset order, so a record out
-- of order waits at most until the ones before it go. Redis holds a
-- partition's records of the requests in flight and of the window, in two
-- keys per partition.
local epochs, pruned = {}, {}
-- A partition's two keys live redis.session_ttl after their last prune (their
-- records are all settled by then: nothing that can come back needs them).
local function keep(dn, od)
    redis.call('EXPIRE', dn, ARGV[1])
    redis.call('EXPIRE', od, ARGV[1])
end
local function prune(dn, od, settled)
    if pruned[dn] then
        return
    end
    pruned[dn] = true
    if settled == '0' then
        return
    end
    local below, names = tonumber(settled), {}
    local head = redis.call('LINDEX', od, 0) -- most batches find nothing to drop: one look
    if not head or tonumber(string.sub(head, 1, string.find(head, ' ', 1, true) - 1)) >= below then
        return
    end
    for _, e in ipairs(redis.call('LRANGE', od, 0, 199)) do
        local sp = string.find(e, ' ', 1, true)
        if tonumber(string.sub(e, 1, sp - 1)) >= below then
            break
        end
        names[#names + 1] = string.sub(e, sp + 1)
    end
    if #names > 0 then
        redis.call('HDEL', dn, unpack(names))
        redis.call('LTRIM', od, #names, -1)
        keep(dn, od) -- in use: their TTL starts again
    end
end
local function item(i)
    local k, a = 6 * i, 8 * i + 1
    local ep, rv, state = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]
    local dn, od, name = KEYS[k + 5], KEYS[k + 6], ARGV[a + 5]
    if ep ~= '0' then
        local e = KEYS[k + 3]
        if epochs[e] == nil then
            epochs[e] = redis.call('GET', e)
        end
        if epochs[e] ~= ep then
            return -1
        end
    end
    prune(dn, od, ARGV[a + 7])
    local pg = KEYS[k + 2]
    -- the reply record, unless the request was answered before (nothing written then)
    if redis.call('HSETNX', dn, name, ARGV[a + 2]) == 0 then
        return {3, redis.call('HGET', dn, name)}
    end
    -- compare-and-set: nothing is written unless the state is still at the version the run
    -- read (a state it changed, or a reply computed from a cached state)
    if rv ~= '' and (redis.call('HGET', pg, '') or '0') ~= rv then
        redis.call('HDEL', dn, name)
        return -2
    end
    if state ~= '' then
        if not redis.call('SET', KEYS[k + 1], state, 'XX', 'EX', ARGV[1]) then
            redis.call('HDEL', dn, name) -- the session is gone: nothing written after all
            return 0
        end
        -- every state write moves the version on, so any run that read before it conflicts
        redis.call('HINCRBY', pg, '', 1)
    end
    local flags = ARGV[a + 8]
    if string.find(flags, 't', 1, true) then
        if state == '' then
            redis.call('EXPIRE', KEYS[k + 1], ARGV[1])
        end
        redis.call('EXPIRE', pg, ARGV[1])
    end
    if redis.call('RPUSH', od, ARGV[a + 6] .. ' ' .. name) == 1 then
        keep(dn, od) -- new keys: they expire if the partition is no longer consumed
    end
    if string.find(flags, 'c', 1, true) then
        redis.call('DEL', KEYS[k + 4])
    end
    return 1
end
--#include each_item.lua
