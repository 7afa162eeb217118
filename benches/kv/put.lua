-- PUT /v1/kv/bench/<n>: 100-byte values over 1000 keys (cairn and Consul); with KV_TOKEN set
-- (run --acl), every request carries it in X-Consul-Token, as Consul's clients send it.
local n = 0
local body = string.rep("x", 100)
local token = os.getenv("KV_TOKEN")
local headers = token and { ["X-Consul-Token"] = token } or nil
request = function()
  n = n + 1
  return wrk.format("PUT", "/v1/kv/bench/" .. (n % 1000), headers, body)
end
