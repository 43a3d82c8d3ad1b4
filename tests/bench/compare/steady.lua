-- Steady-state throughput for scenario 2 (run.sh). Usage:
--   wrk ... -s steady.lua URL -- CONNECTIONS
-- With 1 s sleeps nothing completes in the first second of a run, so wrk's
-- overall req/s is capped at conns * (D - 1) / D (9,000/s for 10k, 10 s).
-- Printed at the end:
--   steady_rps N  : 2xx responses received during whole wall-clock seconds
--                   2 .. D-1 of the run (os.time() ticks; the window lies
--                   entirely inside the run) divided by its length. All
--                   connections start together, so completions come in
--                   bursts about one second apart: expect +-1 burst / window.
--   little_rps N  : Little's law, connected connections / mean latency —
--                   what the server sustains with every connection busy.
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    t0 = os.time()
    nconns = tonumber(args[1]) or 0
    seen = {}
end

function response(status, headers, body)
    if status >= 200 and status < 300 then
        local s = os.time() - t0
        seen[s] = (seen[s] or 0) + 1
    end
end

function done(summary, latency, requests)
    local dur = math.floor(summary.duration / 1000000 + 0.5)
    local first, last = 2, dur - 1
    local n = 0
    for _, t in ipairs(threads) do
        local tseen = t:get("seen")
        for s = first, last do
            n = n + (tseen[s] or 0)
        end
    end
    local window = last - first + 1
    if window > 0 then
        io.write(string.format("steady_rps %.0f window %ds\n", n / window, window))
    end
    local conns = threads[1]:get("nconns") - summary.errors.connect
    if latency.mean > 0 and conns > 0 then
        io.write(string.format("little_rps %.0f connected %d\n", conns / (latency.mean / 1e6), conns))
    end
end
