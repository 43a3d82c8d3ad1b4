-- wrk script: POST one email job per request (tests/bench/jobs_bench.sh).
wrk.method = "POST"
wrk.body = '{"to": "bench@example.com"}'
wrk.headers["Content-Type"] = "application/json"
