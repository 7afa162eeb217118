-- etcd v3 JSON gateway: POST /v3/kv/range for bench/<n> (linearizable reads, etcd's default).
local n = 0
local keys = {}
local function enc(s)
  local t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return t:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
for i = 0, 999 do keys[i] = enc("bench/" .. i) end
local b64 = enc(string.rep("x", 100))
request = function()
  n = n + 1
  local body = '{"key":"' .. keys[n % 1000] .. '"}'
  return wrk.format("POST", "/v3/kv/range", { ["Content-Type"] = "application/json" }, body)
end
