-- list.lua: list_programs (sf_store_list_programs). A read: unfenced.
--
-- KEYS[1]  P:{S}:state    KEYS[2]  P:{S}:programs
--
-- Returns the session's program ids (any order), or nil when there is no
-- session.
--
-- Keeps: the version field ('') of the programs hash is never listed.
if redis.call('EXISTS', KEYS[1]) == 0 then
    return false
end
local ids = {}
for _, k in ipairs(redis.call('HKEYS', KEYS[2])) do
    if k ~= '' then -- '' holds the version
        ids[#ids + 1] = k
    end
end
return ids
