-- wrk script of bench/run.sh.
--
-- With BENCH_COOKIES set to a file of session IDs, one a line, every request
-- carries the cookie of one of them, picked at random; otherwise the
-- requests are wrk's own (with its -H headers).
--
-- At the end it prints one line for run.sh to read:
--   BENCH rps=<requests/s> p50=<us> p99=<us> requests=<n> errors=<n> status=<n>
-- errors counts connect, read, write and timeout errors; status counts
-- responses that were not 2xx or 3xx.

local file = os.getenv("BENCH_COOKIES")
local cookie_name = os.getenv("BENCH_COOKIE_NAME") or "session"

if file and file ~= "" then
	local ids = {}
	for line in io.lines(file) do
		if line ~= "" then
			ids[#ids + 1] = cookie_name .. "=" .. line
		end
	end
	local n = #ids
	if n == 0 then
		error("no session IDs in " .. file)
	end
	math.randomseed(os.time())
	request = function()
		return wrk.format(nil, nil, { ["Cookie"] = ids[math.random(n)] })
	end
end

done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format(
		"BENCH rps=%.1f p50=%d p99=%d requests=%d errors=%d status=%d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50), latency:percentile(99),
		summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
