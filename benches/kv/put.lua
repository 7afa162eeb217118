-- PUT /v1/kv/bench/<n>: 100-byte values over 1000 keys (cairn and Consul).
local n = 0
local body = string.rep("x", 100)
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/kv/bench/" .. (n % 1000), nil, body)
end
