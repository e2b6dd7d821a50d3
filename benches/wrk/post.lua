-- The same JSON POST every time (login): the body comes from BENCH_BODY, set by
-- benches/run.mjs, so the password never sits in a file.
require("report")
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
