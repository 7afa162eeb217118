-- wrk script: each request registers a distinct node with one service (catalog register).
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", thread_id)
  thread_id = thread_id + 1
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "PUT"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local node = string.format("bench-%d-%d", id, counter)
  local body = string.format(
    '{"Node":"%s","Address":"10.%d.%d.%d","Service":{"Service":"bench","ID":"bench","Port":8080,"Tags":["v1"]}}',
    node, id % 250, math.floor(counter / 250) % 250, counter % 250)
  return wrk.format(nil, "/v1/catalog/register", nil, body)
end
