// `npm run bench:algorithms`: what each token algorithm (EdDSA, ES256, RS256) costs in the
// Worker. One release Worker per algorithm under Miniflare/workerd; for each, sequential
// requests that verify a token (`GET /api/v1/users/me`: WebCrypto verify + one D1 read) and
// that sign one (`POST /api/v1/auth/refresh`: sign + a Durable Object call + a D1 batch), and
// the last with a token signed by an unpublished key (`users/me` refused right after the
// signature check, so no storage I/O). Reports the median latency and workerd's CPU per
// request (from /proc, as the isolate's clock stands still while it computes). The routes
// are the same for every algorithm, so the differences between rows are the algorithms'.
// Prints figures; asserts nothing.
//
//   npm run bench:algorithms                 # build, then 400 requests per scenario
//   npm run bench:algorithms -- --no-build --count 200
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { startWorker } from "../tests/helpers.mjs";
import { generate } from "../scripts/keys.mjs";

const args = process.argv.slice(2);
const COUNT = Number(args[args.indexOf("--count") + 1]) || 400;
if (!args.includes("--no-build")) execFileSync("bash", ["scripts/build.sh"], { stdio: "inherit" });

const TICKS_PER_MS = Number(execFileSync("getconf", ["CLK_TCK"]).toString()) / 1000;

/** workerd's CPU time so far (user + system), in ms: Miniflare runs it as our child. */
function workerdCpuMs() {
  const pids = execFileSync("pgrep", ["-P", String(process.pid), "workerd"]).toString().trim().split("\n");
  return pids.reduce((sum, pid) => {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return sum + (Number(fields[11]) + Number(fields[12])) / TICKS_PER_MS;
  }, 0);
}

/** `count` sequential requests from `next()` (a fetch promise); median ms and CPU ms each. */
async function measure(count, next) {
  for (let i = 0; i < 20; i += 1) await (await next()).text(); // warm-up
  const times = [];
  const cpuBefore = workerdCpuMs();
  for (let i = 0; i < count; i += 1) {
    const start = performance.now();
    await (await next()).text();
    times.push(performance.now() - start);
  }
  const cpu = (workerdCpuMs() - cpuBefore) / count;
  times.sort((a, b) => a - b);
  return { p50_ms: times[Math.floor(count / 2)], cpu_ms: cpu };
}

const rows = [];
for (const alg of ["EdDSA", "ES256", "RS256"]) {
  const worker = await startWorker({
    signingKey: generate(alg).signingKey,
    vars: {
      JWT_ALGORITHM: alg,
      ALLOWED_HOSTS: "127.0.0.1,localhost",
      RATE_LIMIT_REFRESH: "100000000/60",
      ARGON2_MEMORY_KIB: "1024",
      ARGON2_ITERATIONS: "1",
    },
  });
  try {
    const url = (await worker.mf.ready).toString().replace(/\/$/, "");
    const account = await worker.signup();
    const auth = { authorization: `Bearer ${account.access_token}` };
    const verify = await measure(COUNT, () => fetch(`${url}/api/v1/users/me`, { headers: auth }));
    let refreshToken = account.refresh_token;
    const sign = await measure(COUNT, async () => {
      const response = await fetch(`${url}/api/v1/auth/refresh`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      const body = await response.json();
      refreshToken = body.refresh_token;
      return new Response(null);
    });
    // A signature the Worker must check and refuse: verify cost without any storage I/O.
    const [header, payload, signature] = account.access_token.split(".");
    const flipped = `${header}.${payload}.${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`;
    const refused = await measure(COUNT, () => fetch(`${url}/api/v1/users/me`, { headers: { authorization: `Bearer ${flipped}` } }));
    const ping = await measure(COUNT, () => fetch(`${url}/api/ping`));
    rows.push({ alg, ping, verify, refused, sign, token_bytes: account.access_token.length });
  } finally {
    await worker.dispose();
  }
}

const f = (value) => value.toFixed(2);
console.log(`\n${COUNT} sequential requests per scenario; median latency / workerd CPU per request (ms)\n`);
console.log("| alg | token bytes | no-op ping | users/me (verify) | bad signature (verify only) | refresh (sign) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const row of rows) {
  const cell = (m) => `${f(m.p50_ms)} / ${f(m.cpu_ms)}`;
  console.log(`| ${row.alg} | ${row.token_bytes} | ${cell(row.ping)} | ${cell(row.verify)} | ${cell(row.refused)} | ${cell(row.sign)} |`);
}
