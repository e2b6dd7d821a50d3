// Benchmark: the latency a rate-limit check adds to a request. Prints figures, asserts nothing.
//
// Two routes of the same shape, both answered 422 after reading a `{}` JSON body:
//   limited    POST /api/v1/auth/verify-email   one RateLimiter Durable Object call first
//   unlimited  POST /api/v1/auth/refresh        no limiter (it needs a token before one runs)
// The budget is set far above what the run uses, so every check passes and costs what a
// passing check costs. Sequential requests alternate between the two routes so drift hits
// both alike; concurrent runs compare one client IP (every check goes to one object, which
// serialises them) with a new IP per request (checks spread over many objects).
//
// Miniflare runs the Durable Objects in the same workerd process as the Worker, so these
// figures are the limiter's own cost (object call, storage write, alarm), not a network
// hop: in production an object lives in one location and a request from elsewhere pays
// the round trip to it.
//
//   npm run bench:rate-limit                      (builds first)
//   N=2000 CONCURRENCY=32 node benches/rate_limit.mjs
import { startWorker } from "../tests/helpers.mjs";

const N = Number(process.env.N ?? 1000);
const WARMUP = Number(process.env.WARMUP ?? 100);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 16);

const LIMITED = "/api/v1/auth/verify-email";
const UNLIMITED = "/api/v1/auth/refresh";

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
  return { n: samples.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean };
}

const fmt = (ms) => `${ms.toFixed(3).padStart(8)} ms`;

function row(name, stats) {
  return `${name.padEnd(42)} n=${String(stats.n).padStart(5)}  p50 ${fmt(stats.p50)}  p99 ${fmt(stats.p99)}  mean ${fmt(stats.mean)}`;
}

function difference(name, a, b) {
  return `${name.padEnd(42)}          p50 ${fmt(a.p50 - b.p50)}  p99 ${fmt(a.p99 - b.p99)}  mean ${fmt(a.mean - b.mean)}`;
}

let ipCounter = 0;
function nextIp() {
  ipCounter += 1;
  return `10.${(ipCounter >> 16) & 255}.${(ipCounter >> 8) & 255}.${ipCounter & 255}`;
}

async function once(worker, path, ip, expectLimitHeader) {
  const started = performance.now();
  const response = await worker.fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", "cf-connecting-ip": ip },
    body: "{}",
  });
  await response.arrayBuffer();
  const elapsed = performance.now() - started;
  if (response.status !== 422) throw new Error(`${path}: unexpected ${response.status}`);
  if (expectLimitHeader !== response.headers.has("ratelimit-limit")) {
    throw new Error(`${path}: the limiter ${expectLimitHeader ? "did not run" : "ran"}`);
  }
  return elapsed;
}

async function concurrent(total, concurrency, task) {
  const samples = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next += 1;
        samples.push(await task());
      }
    }),
  );
  return { samples, seconds: (performance.now() - started) / 1000 };
}

const worker = await startWorker({ vars: { RATE_LIMIT_VERIFY: "100000000/60" } });
try {
  const ip = nextIp();
  for (let i = 0; i < WARMUP; i += 1) {
    await once(worker, LIMITED, ip, true);
    await once(worker, UNLIMITED, ip, false);
  }

  const limited = [];
  const unlimited = [];
  for (let i = 0; i < N; i += 1) {
    if (i % 2 === 0) {
      limited.push(await once(worker, LIMITED, ip, true));
      unlimited.push(await once(worker, UNLIMITED, ip, false));
    } else {
      unlimited.push(await once(worker, UNLIMITED, ip, false));
      limited.push(await once(worker, LIMITED, ip, true));
    }
  }
  const seqLimited = summary(limited);
  const seqUnlimited = summary(unlimited);

  // A client's first request: its key's object does not exist yet.
  const fresh = [];
  const freshBaseline = [];
  for (let i = 0; i < N; i += 1) {
    fresh.push(await once(worker, LIMITED, nextIp(), true));
    freshBaseline.push(await once(worker, UNLIMITED, ip, false));
  }
  const seqFresh = summary(fresh);
  const seqFreshBaseline = summary(freshBaseline);

  const oneKey = await concurrent(N, CONCURRENCY, () => once(worker, LIMITED, ip, true));
  const manyKeys = await concurrent(N, CONCURRENCY, () => once(worker, LIMITED, nextIp(), true));
  const noLimiter = await concurrent(N, CONCURRENCY, () => once(worker, UNLIMITED, ip, false));
  const conOneKey = summary(oneKey.samples);
  const conManyKeys = summary(manyKeys.samples);
  const conNoLimiter = summary(noLimiter.samples);

  console.log(`rate-limit check latency: Miniflare on Node ${process.version}, N=${N}, warm-up ${WARMUP} pairs`);
  console.log("");
  console.log("sequential, alternating (one client IP)");
  console.log(row("  limited    POST /auth/verify-email {}", seqLimited));
  console.log(row("  unlimited  POST /auth/refresh {}", seqUnlimited));
  console.log(difference("  added by the limiter", seqLimited, seqUnlimited));
  console.log("");
  console.log("sequential, a new client IP per limited request (the key's first use)");
  console.log(row("  limited, new key each time", seqFresh));
  console.log(row("  unlimited", seqFreshBaseline));
  console.log(difference("  added by the limiter, cold key", seqFresh, seqFreshBaseline));
  console.log("");
  console.log(`concurrent, ${CONCURRENCY} in flight`);
  console.log(row("  limited, one IP (one object)", conOneKey) + `  ${(N / oneKey.seconds).toFixed(0)} req/s`);
  console.log(row("  limited, an IP per request (sharded)", conManyKeys) + `  ${(N / manyKeys.seconds).toFixed(0)} req/s`);
  console.log(row("  unlimited", conNoLimiter) + `  ${(N / noLimiter.seconds).toFixed(0)} req/s`);
  console.log(difference("  added, one object", conOneKey, conNoLimiter));
  console.log(difference("  added, sharded", conManyKeys, conNoLimiter));
} finally {
  await worker.dispose();
}
