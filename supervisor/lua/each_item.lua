-- each_item.lua: the loop that closes a batched script (claims, commits).
-- Not a script of its own: a script defines item(i) for its i-th item
-- (0-based; its keys KEYS[6i+1..6i+6], its arguments ARGV[8i+2..8i+9]) and
-- says `--#include each_item.lua` last.
--
-- Returns one answer per item, in order: what item(i) returned, or, when one
-- of its commands failed, the error text (a string). A failed item does not
-- stop the others; what it wrote before failing stays written.
local out = {}
for i = 0, #KEYS / 6 - 1 do
    local ok, r = pcall(item, i)
    if ok then
        out[i + 1] = r
    else
        out[i + 1] = type(r) == 'table' and r.err or tostring(r)
    end
end
return out
