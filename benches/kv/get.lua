-- GET /v1/kv/bench/<n> over 1000 keys written by put.lua (cairn and Consul).
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/kv/bench/" .. (n % 1000))
end
