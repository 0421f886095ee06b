-- wrk script: POST single transfers with unique ids from account "src" (allow_overdraft) to
-- "dst0".."dst99", all USD. Create the accounts first (see gateway/README.md or the README's
-- Performance section). Run with ONE wrk thread (-t1): ids are unique within a thread only.
--   wrk -t1 -c64 -d10s --latency -s gateway/bench/wrk-transfers.lua http://127.0.0.1:8080
local counter = 0
math.randomseed(os.time())
local run = math.random(1, 2000000000)
request = function()
  counter = counter + 1
  local body = string.format(
    '{"id":"wrk-%d-%d","debit_account_id":"src","credit_account_id":"dst%d","amount":1,"currency":"USD"}',
    run, counter, counter % 100)
  return wrk.format("POST", "/v1/transfers", {["Content-Type"] = "application/json"}, body)
end
