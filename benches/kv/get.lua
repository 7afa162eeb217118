-- GET /v1/kv/bench/<n> over 1000 keys written by put.lua (cairn and Consul); with KV_TOKEN set
-- (run --acl), every request carries it in X-Consul-Token, as Consul's clients send it.
local n = 0
local token = os.getenv("KV_TOKEN")
local headers = token and { ["X-Consul-Token"] = token } or nil
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/kv/bench/" .. (n % 1000), headers)
end
