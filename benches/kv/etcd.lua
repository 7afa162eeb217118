-- etcd v3 JSON gateway over base64 keys bench/<n> (1000 keys); KV_OP picks the request:
-- put (default): POST /v3/kv/put with a 100-byte value; get: POST /v3/kv/range (linearizable,
-- etcd's default).
local op = os.getenv("KV_OP") or "put"
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
local json = { ["Content-Type"] = "application/json" }
request = function()
  n = n + 1
  local key = keys[n % 1000]
  if op == "get" then
    return wrk.format("POST", "/v3/kv/range", json, '{"key":"' .. key .. '"}')
  end
  return wrk.format("POST", "/v3/kv/put", json, '{"key":"' .. key .. '","value":"' .. b64 .. '"}')
end
