// `node benches/profile.mjs [scenario] [seconds]`: where the Worker's CPU goes on one route.
// Starts the built Worker (build/, from `npm run build`) in Miniflare with the V8 inspector
// open, puts it under load with autocannon, and samples it with the CPU profiler for the
// run. Prints the functions with the most self time (wasm functions keep their Rust names)
// and the share of samples in wasm, in the JS glue and in the runtime. A measuring tool
// for finding the envelope's cost, not a benchmark: `npm run bench` gives the figures.
//
//   node benches/profile.mjs ping 8        # GET /api/ping
//   node benches/profile.mjs me 8          # GET /api/v1/users/me with a bearer token
//   node benches/profile.mjs refresh 8     # POST /api/v1/auth/refresh chains
import autocannon from "autocannon";
import { join, resolve } from "node:path";
import { startWorker, ROOT } from "../tests/helpers.mjs";
import { BENCH_VARS } from "./miniflare.mjs";

const [scenario = "ping", seconds = "6", buildDir = join(ROOT, "build")] = process.argv.slice(2);
const INSPECTOR_PORT = 9329;

const VARS = BENCH_VARS;

/** A Chrome DevTools Protocol session over the inspector's WebSocket. */
async function inspect(port) {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  const target = targets.find((t) => !t.title?.includes("miniflare")) ?? targets[0];
  const socket = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let next = 0;
  const pending = new Map();
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.id && pending.has(data.id)) {
      pending.get(data.id)(data);
      pending.delete(data.id);
    }
  };
  return {
    targets,
    send(method, params = {}) {
      next += 1;
      const id = next;
      socket.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve) => pending.set(id, resolve));
    },
    close: () => socket.close(),
  };
}

function summarise(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  let total = 0;
  const kinds = { wasm: 0, glue: 0, runtime: 0, idle: 0 };
  for (const [id, count] of counts) {
    const frame = byId.get(id).callFrame;
    const name = frame.functionName || `(anonymous ${frame.url.split("/").pop()}:${frame.lineNumber})`;
    total += count;
    self.set(name, (self.get(name) ?? 0) + count);
    if (name === "(idle)" || name === "(program)") kinds.idle += count;
    else if (frame.url.startsWith("wasm://")) kinds.wasm += count;
    else if (frame.url) kinds.glue += count;
    else kinds.runtime += count;
  }
  const busy = total - kinds.idle;
  console.log(`samples: ${total}, busy ${busy}`);
  for (const [kind, count] of Object.entries(kinds)) {
    if (kind !== "idle") console.log(`  ${kind}: ${((count / busy) * 100).toFixed(1)}% of busy`);
  }
  const top = [...self].filter(([name]) => name !== "(idle)" && name !== "(program)").sort((a, b) => b[1] - a[1]).slice(0, 45);
  for (const [name, count] of top) {
    console.log(`${((count / busy) * 100).toFixed(1).padStart(5)}%  ${name.slice(0, 150)}`);
  }
}

const worker = await startWorker({ vars: VARS, options: {
    inspectorPort: INSPECTOR_PORT,
    scriptPath: join(resolve(buildDir), "index.js"),
    modulesRoot: resolve(buildDir),
  } });
const url = (await worker.mf.ready).toString().replace(/\/$/, "");
const account = scenario === "ping" ? null : await worker.signup();
// What Cloudflare's edge adds to every request, as `npm run bench` sends it.
const EDGE = { "cf-ray": "8f1e2d3c4b5a6978-AMS", "cf-ipcountry": "NL" };

/** The load for one run: a refresh run spends its tokens, so each run logs in afresh. */
async function loadOptions() {
  if (scenario === "me") {
    return { url: `${url}/api/v1/users/me`, headers: { ...EDGE, authorization: `Bearer ${account.access_token}` } };
  }
  if (scenario !== "refresh") return { url: `${url}/api/ping`, headers: EDGE };
  const pool = [];
  for (let i = 0; i < 8; i += 1) {
    const response = await worker.request("POST", "/api/v1/auth/login", {
      body: { username: account.username, password: account.password },
    });
    pool.push(response.json.refresh_token);
  }
  return {
    url: `${url}/api/v1/auth/refresh`,
    method: "POST",
    headers: { ...EDGE, "content-type": "application/json" },
    setupClient(client) {
      client.setBody(JSON.stringify({ refresh_token: pool.shift() }));
      client.on("body", (body) => {
        try {
          client.setBody(JSON.stringify({ refresh_token: JSON.parse(body).refresh_token }));
        } catch {
          // An error body keeps the last token; the non-2xx count shows it.
        }
      });
    },
  };
}
// Warm up, then profile a run.
await autocannon({ ...(await loadOptions()), connections: 8, duration: 2 });
const options = await loadOptions();
const session = await inspect(INSPECTOR_PORT);
console.log("targets:", session.targets.map((t) => t.title).join(", "));
await session.send("Profiler.enable");
await session.send("Profiler.setSamplingInterval", { interval: 50 });
await session.send("Profiler.start");
const result = await autocannon({ ...options, connections: 8, duration: Number(seconds) });
const { result: stopped } = await session.send("Profiler.stop");
console.log(`${scenario}: ${result.requests.average.toFixed(0)} req/s, non-2xx ${result.non2xx}, errors ${result.errors}`);
summarise(stopped.profile);
session.close();
await worker.dispose();
