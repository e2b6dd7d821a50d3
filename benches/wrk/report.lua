-- The figures of one wrk run as one line of JSON on stdout, for benches/run.mjs to read:
-- reading wrk's own text would mean parsing units (us/ms/s) and optional lines. Every script
-- in this directory requires it (wrk runs with this directory as its working directory).
function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,' ..
    '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect, errors.read, errors.write, errors.timeout))
end
