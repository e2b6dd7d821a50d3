// Deploy check: asks wrangler what a plain `wrangler deploy` would upload and refuses it
// unless it is production-safe. `wrangler deploy --dry-run` resolves wrangler.toml exactly as
// a deploy does (vars, bindings, --env, --var) but uploads nothing and needs no login; its
// `--outfile` is the upload request itself, so the vars and bindings checked here are the
// ones Cloudflare would receive, not a reading of the TOML by other means.
//
//   npm run check:deploy                     builds (wrangler.toml's [build]), then checks
//   npm run check:deploy -- --strict         also fails on what a real deploy still lacks
//   node scripts/check-deploy.mjs --prebuilt [--config FILE] [-- WRANGLER ARGS...]
//
// --prebuilt     build/ is current (npm test has just built it): the config is checked
//                without running its [build] command, so a test run builds only once. Its
//                relative paths resolve against the project root wherever the file lies.
// --config FILE  the wrangler configuration to check (default: wrangler.toml).
// --strict       placeholders (D1/KV ids, unset JWT_ISSUER/JWT_AUDIENCE/ALLOWED_HOSTS,
//                loopback hosts) fail too: use it right before a real deploy.
// --max-gzip-kib N   upload budget after gzip (default 1536, README "Performance").
// Arguments after `--` go to wrangler (e.g. `-- --env production`).
//
// Exit status: 0 production-safe, 1 refused (or wrangler failed), 2 usage error.
// tests/deploy.test.mjs runs it on every `npm test`, including against configs it must refuse.
import { spawn } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** The bindings the Worker cannot run without (README "Configuration"), by name; the
 * database's binding is chosen by DATABASE (DATABASE_BINDINGS). */
export const REQUIRED_BINDINGS = {
  KV: { type: "kv_namespace" },
  RATE_LIMITER: { type: "durable_object_namespace", class_name: "RateLimiter" },
  SESSION_GUARD: { type: "durable_object_namespace", class_name: "SessionGuard" },
  METRICS: { type: "durable_object_namespace", class_name: "MetricsAggregator" },
  ASSETS: { type: "assets" },
};

/** The binding each value of DATABASE needs (src/config.rs). */
export const DATABASE_BINDINGS = {
  d1: { DB: { type: "d1" } },
  postgres: { HYPERDRIVE: { type: "hyperdrive" } },
};

/** Vars without a default (src/config.rs): unset, every request answers 500 (fail closed). */
export const DEPLOYMENT_VARS = ["JWT_ISSUER", "JWT_AUDIENCE", "ALLOWED_HOSTS"];

// 1.5 MiB: the PostgreSQL driver (tokio-postgres and its SCRAM, Unicode and SQLSTATE tables)
// adds about 270 KiB gzip to the 840 the rest takes, and provider sign-in about 120 more; the
// free plan allows 3 MB.
export const DEFAULT_MAX_GZIP_BYTES = 1536 * 1024;

/**
 * The config text without its [build] tables (top level and per environment): `--prebuilt`
 * checks the bundle already in build/ instead of building it again.
 */
export function withoutBuild(toml) {
  const kept = [];
  let skipping = false;
  for (const line of toml.split("\n")) {
    const header = line.match(/^\s*\[\[?\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]?\s*(#.*)?$/);
    if (header) {
      skipping = /^(env\.[^.]+\.)?build(\.|$)/.test(header[1].replaceAll('"', ""));
    }
    if (!skipping) kept.push(line);
  }
  return kept.join("\n");
}

/**
 * A directory holding the config without [build], beside links to every top-level entry of
 * the project, so each relative path in the config (main, assets, migrations) resolves to
 * the same file as from the project root. Wrangler's own state (.wrangler) stays in it.
 */
function stage(configPath) {
  if (!configPath.endsWith(".toml")) {
    throw new UsageError(`--prebuilt needs a TOML config, not ${configPath}`);
  }
  const dir = mkdtempSync(join(tmpdir(), "edge-auth-deploy-check-"));
  const skip = new Set([".wrangler", "wrangler.toml", "wrangler.json", "wrangler.jsonc"]);
  const links = [];
  for (const entry of readdirSync(ROOT)) {
    if (skip.has(entry)) continue;
    links.push(join(dir, entry));
    symlinkSync(join(ROOT, entry), links.at(-1));
  }
  const staged = join(dir, "wrangler.toml");
  writeFileSync(staged, withoutBuild(readFileSync(configPath, "utf8")));
  return {
    config: staged,
    dir,
    // The links go first, one by one: removing the directory must never reach the project.
    remove() {
      for (const link of links) unlinkSync(link);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

class UsageError extends Error {}

/** Run a command; resolves to {status, output} (stdout then stderr), echoing when asked. */
function run(command, args, { cwd, env, echo }) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const stdout = [];
    const stderr = [];
    child.stdout.on("data", (chunk) => {
      stdout.push(chunk);
      if (echo) process.stderr.write(chunk);
    });
    child.stderr.on("data", (chunk) => {
      stderr.push(chunk);
      if (echo) process.stderr.write(chunk);
    });
    child.on("error", reject);
    child.on("close", (code, signal) =>
      resolvePromise({
        status: code ?? `signal ${signal}`,
        output: Buffer.concat(stdout).toString() + Buffer.concat(stderr).toString(),
      }),
    );
  });
}

/**
 * The upload request wrangler wrote with `--outfile`: multipart form data whose `metadata`
 * part holds the bindings (every var with its value) and whose file parts are the modules.
 */
export async function readUpload(path) {
  const body = readFileSync(path);
  const firstLine = body.subarray(0, 200).toString("latin1").split("\r\n")[0];
  if (!firstLine.startsWith("--")) throw new Error(`${path} is not multipart form data`);
  const form = await new Response(body, {
    headers: { "content-type": `multipart/form-data; boundary=${firstLine.slice(2)}` },
  }).formData();
  const metadata = JSON.parse(form.get("metadata"));
  const modules = [];
  for (const [name, value] of form) {
    if (name === "metadata" || typeof value === "string") continue;
    modules.push({ name, type: value.type, content: Buffer.from(await value.arrayBuffer()) });
  }
  return { metadata, modules };
}

/**
 * `wrangler deploy --dry-run` of `config`; resolves to {status, output, upload} (`upload`
 * undefined when wrangler failed). `wranglerArgs` are appended (e.g. --env, --var).
 */
export async function dryRun({
  config = join(ROOT, "wrangler.toml"),
  prebuilt = false,
  wranglerArgs = [],
  echo = false,
} = {}) {
  const configPath = resolve(config);
  if (!existsSync(configPath)) throw new UsageError(`no such config: ${configPath}`);
  const staged = prebuilt ? stage(configPath) : undefined;
  const work = mkdtempSync(join(tmpdir(), "edge-auth-deploy-out-"));
  try {
    const outfile = join(work, "upload.form");
    const args = [
      "deploy",
      "--dry-run",
      "--config",
      staged ? staged.config : configPath,
      "--outdir",
      join(work, "bundle"),
      "--outfile",
      outfile,
      ...wranglerArgs,
    ];
    const env = {
      ...process.env,
      // wrangler (and the Node 22 it needs) from the project, as in scripts/*.sh.
      PATH: [join(ROOT, "node_modules/.bin"), process.env.PATH].join(delimiter),
      CI: "true",
      WRANGLER_SEND_METRICS: "false",
      NO_COLOR: "1",
      FORCE_COLOR: "0",
    };
    const cwd = staged ? staged.dir : dirname(configPath);
    const { status, output } = await run("wrangler", args, { cwd, env, echo });
    if (status !== 0 || !existsSync(outfile)) return { status, output, upload: undefined };
    return { status, output, upload: await readUpload(outfile) };
  } finally {
    rmSync(work, { recursive: true, force: true });
    staged?.remove();
  }
}

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;

/**
 * The verdict on an upload: `failures` make the deploy unsafe; `notes` are what a real deploy
 * still needs (failures too with `strict`); `passed` says what was checked.
 */
export function checkUpload(
  upload,
  { maxGzipBytes = DEFAULT_MAX_GZIP_BYTES, strict = false, output = "" } = {},
) {
  const failures = [];
  const notes = [];
  const passed = [];
  const bindings = new Map((upload.metadata.bindings ?? []).map((b) => [b.name, b]));
  const text = (name) => {
    const binding = bindings.get(name);
    return binding?.type === "plain_text" ? binding.text : undefined;
  };

  // ENVIRONMENT decides whether development routes (the outbox: every reset code) exist.
  const environment = bindings.get("ENVIRONMENT");
  if (environment === undefined) {
    failures.push('ENVIRONMENT is not set: a deploy must say ENVIRONMENT = "production" under [vars]');
  } else if (environment.type !== "plain_text") {
    failures.push(`ENVIRONMENT is a ${environment.type} binding; it must be the var "production"`);
  } else if (environment.text !== "production") {
    failures.push(
      `ENVIRONMENT is ${JSON.stringify(environment.text)}: a deploy must be "production" ` +
        "(development values belong to scripts/dev.sh, not to wrangler.toml's top level)",
    );
  } else {
    passed.push('ENVIRONMENT is "production"');
  }

  // The outbox keeps every verification and reset code readable.
  const provider = text("EMAIL_PROVIDER");
  if (provider !== undefined && provider.trim().toLowerCase() === "outbox") {
    failures.push('EMAIL_PROVIDER is "outbox", the development mailbox: set a real provider or none');
  } else {
    passed.push(`EMAIL_PROVIDER is ${provider === undefined ? "unset (none)" : JSON.stringify(provider)}`);
  }

  const bindingProblems = [];
  const database = (text("DATABASE") ?? "d1").trim().toLowerCase() || "d1";
  const databaseBindings = DATABASE_BINDINGS[database];
  if (databaseBindings === undefined) {
    bindingProblems.push(`DATABASE is ${JSON.stringify(database)}: it must be d1 or postgres`);
  }
  const required = { ...(databaseBindings ?? {}), ...REQUIRED_BINDINGS };
  for (const [name, expected] of Object.entries(required)) {
    const binding = bindings.get(name);
    if (binding === undefined) {
      bindingProblems.push(`binding ${name} (${expected.type}) is missing`);
    } else if (binding.type !== expected.type) {
      bindingProblems.push(`binding ${name} is ${binding.type}, expected ${expected.type}`);
    } else if (expected.class_name && binding.class_name !== expected.class_name) {
      bindingProblems.push(`binding ${name} uses class ${binding.class_name}, expected ${expected.class_name}`);
    }
  }
  failures.push(...bindingProblems);
  if (bindingProblems.length === 0) passed.push(`bindings ${Object.keys(required).join(", ")}`);

  // Size as wrangler counts it: the modules, without source maps, gzipped together. Its own
  // figure ("Total Upload: … / gzip: …") can differ by a few KiB (module order); the larger
  // of the two counts.
  const modules = upload.modules.filter((m) => m.type !== "application/source-map");
  if (!modules.some((m) => m.name === upload.metadata.main_module)) {
    failures.push(`the main module ${upload.metadata.main_module} is not in the upload`);
  }
  const raw = modules.reduce((sum, m) => sum + m.content.length, 0);
  const reported = output.match(/Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/);
  const gzip = Math.max(
    gzipSync(Buffer.concat(modules.map((m) => m.content))).length,
    reported ? Math.round(Number(reported[1]) * 1024) : 0,
  );
  const size = `upload ${kib(raw)}, gzip ${kib(gzip)} (budget ${kib(maxGzipBytes)} gzip)`;
  if (gzip > maxGzipBytes) failures.push(`${size}: over budget`);
  else passed.push(size);

  for (const name of DEPLOYMENT_VARS) {
    if (!text(name)) notes.push(`${name} is not set: the deployed Worker answers 500 until it is`);
  }
  for (const [name, binding] of bindings) {
    if (binding.type === "plain_text" && /\b(127\.0\.0\.1|localhost)\b/.test(binding.text)) {
      notes.push(`${name} names a loopback host (${JSON.stringify(binding.text)})`);
    }
  }
  if (/^[0-]+$/.test(bindings.get("DB")?.id ?? "")) {
    notes.push("DB has the placeholder database_id: put the id `wrangler d1 create` printed");
  }
  if (/^0+$/.test(bindings.get("KV")?.namespace_id ?? "")) {
    notes.push("KV has the placeholder id: put the id `wrangler kv namespace create` printed");
  }
  if (strict) failures.push(...notes.splice(0));
  return { failures, notes, passed };
}

function parseArgs(argv) {
  const options = { config: join(ROOT, "wrangler.toml"), prebuilt: false, strict: false, wranglerArgs: [] };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === "--") {
      options.wranglerArgs = argv.slice(i + 1);
      break;
    } else if (arg === "--prebuilt") options.prebuilt = true;
    else if (arg === "--strict") options.strict = true;
    else if (arg === "--config" && i + 1 < argv.length) options.config = argv[++i];
    else if (arg === "--max-gzip-kib" && /^\d+$/.test(argv[i + 1] ?? "")) {
      options.maxGzipBytes = Number(argv[++i]) * 1024;
    } else throw new UsageError(`unknown or incomplete argument: ${arg}`);
  }
  return options;
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const what = `${basename(options.config)}${options.wranglerArgs.length ? ` ${options.wranglerArgs.join(" ")}` : ""}`;
  console.log(`deploy check: wrangler deploy --dry-run of ${what}${options.prebuilt ? " (prebuilt build/)" : ""}`);
  // Building takes minutes: show wrangler's progress then. Otherwise its output only on failure.
  const result = await dryRun({ ...options, echo: !options.prebuilt });
  if (result.upload === undefined) {
    if (options.prebuilt) process.stdout.write(result.output);
    console.log(`deploy check FAILED: wrangler deploy --dry-run exited with ${result.status}`);
    return 1;
  }
  if (options.prebuilt && result.output.includes("[custom build]")) {
    process.stdout.write(result.output);
    console.log("deploy check FAILED: --prebuilt could not remove the config's build command");
    return 1;
  }
  const { failures, notes, passed } = checkUpload(result.upload, { ...options, output: result.output });
  // One stream, so the report reads in order wherever it is captured; the status says the rest.
  for (const line of passed) console.log(`  ok    ${line}`);
  for (const line of notes) console.log(`  note  ${line}`);
  for (const line of failures) console.log(`  FAIL  ${line}`);
  if (failures.length > 0) {
    console.log(`deploy check FAILED: ${failures.length} problem(s); this bundle must not be deployed`);
    return 1;
  }
  console.log(
    notes.length > 0
      ? "deploy check passed (production-safe; the notes above are what a real deploy still needs — --strict fails on them)"
      : "deploy check passed",
  );
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error) => {
      console.error(`deploy check: ${error.message}`);
      process.exitCode = error instanceof UsageError ? 2 : 1;
    },
  );
}
