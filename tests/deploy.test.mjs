// The deploy check (scripts/check-deploy.mjs) on every `npm test`: what a plain
// `wrangler deploy` of this repository would upload must be production-safe — ENVIRONMENT
// "production", no outbox, every binding, within the size budget. The checker also has to
// refuse what it exists to catch, so it runs against copies of wrangler.toml put back in
// development mode. All runs use --prebuilt: npm test has just built build/, and a second
// build here would rewrite build/ under the suites running beside this one.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  checkUpload,
  dryRun,
  withoutBuild,
  DEFAULT_MAX_GZIP_BYTES,
  REQUIRED_BINDINGS,
  DATABASE_BINDINGS,
  ROOT,
} from "../scripts/check-deploy.mjs";
import { runCommand } from "./helpers.mjs";

const CHECKER = join(ROOT, "scripts/check-deploy.mjs");
const WRANGLER_TOML = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
// The [vars] line itself (line-anchored: a comment may say the same words).
const PRODUCTION_LINE = /^ENVIRONMENT = "production"$/m;

/** Run the checker's command line; resolves to {code, output} whatever the exit status. */
async function check(...args) {
  const { code, stdout, stderr } = await runCommand(process.execPath, [CHECKER, "--prebuilt", ...args], {
    cwd: ROOT,
    maxBuffer: 16 * 1024 * 1024,
  });
  return { code, output: stdout + stderr };
}

describe("deploy check", () => {
  let dir;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "edge-auth-deploy-test-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** A copy of wrangler.toml with one edit; the edit must apply, or the test proves nothing. */
  function variant(name, edit) {
    const text = edit(WRANGLER_TOML);
    assert.notEqual(text, WRANGLER_TOML, `the ${name} edit did not change wrangler.toml`);
    const path = join(dir, `${name}.toml`);
    writeFileSync(path, text);
    return path;
  }

  test("wrangler.toml as a plain `wrangler deploy` ships it is production-safe", async () => {
    const { code, output } = await check();
    assert.equal(code, 0, output);
    // The copies below edit this line.
    assert.match(WRANGLER_TOML, PRODUCTION_LINE, "wrangler.toml's [vars] should say production");
    assert.match(output, /ok {4}ENVIRONMENT is "production"/);
    assert.match(output, /ok {4}EMAIL_PROVIDER is /);
    assert.match(output, /ok {4}bindings DB, KV, RATE_LIMITER, SESSION_GUARD, METRICS, ASSETS/);
    assert.match(output, /ok {4}upload [\d.]+ KiB, gzip [\d.]+ KiB \(budget 1536\.0 KiB gzip\)/);
    assert.match(output, /deploy check passed/);
  });

  test("a top level in development mode is refused", async () => {
    const config = variant("development", (text) =>
      text.replace(PRODUCTION_LINE, 'ENVIRONMENT = "development"'),
    );
    const { code, output } = await check("--config", config);
    assert.equal(code, 1, output);
    assert.match(output, /FAIL {2}ENVIRONMENT is "development"/);
    assert.match(output, /deploy check FAILED/);
  });

  test("the outbox is refused even with ENVIRONMENT production", async () => {
    const config = variant("outbox", (text) =>
      text.replace(PRODUCTION_LINE, (line) => `${line}\nEMAIL_PROVIDER = "outbox"`),
    );
    const { code, output } = await check("--config", config);
    assert.equal(code, 1, output);
    assert.match(output, /FAIL {2}EMAIL_PROVIDER is "outbox"/);
    assert.doesNotMatch(output, /FAIL {2}ENVIRONMENT/);
  });

  test("a var given to wrangler on the command line is checked as well", async () => {
    // wrangler prints such vars as "(hidden)"; the upload itself carries the value.
    const { code, output } = await check("--", "--var", "ENVIRONMENT:development");
    assert.equal(code, 1, output);
    assert.match(output, /FAIL {2}ENVIRONMENT is "development"/);
  });

  describe("on the upload wrangler would send", () => {
    let upload;
    let output;
    before(async () => {
      const result = await dryRun({ prebuilt: true });
      assert.equal(result.status, 0, result.output);
      ({ upload, output } = result);
    });

    /** The upload with its bindings changed by `edit`. */
    const withBindings = (edit) => ({
      ...upload,
      metadata: { ...upload.metadata, bindings: edit(upload.metadata.bindings.map((b) => ({ ...b }))) },
    });

    test("passes as it is, and counts the size as wrangler reports it", () => {
      const verdict = checkUpload(upload, { output });
      assert.deepEqual(verdict.failures, []);
      const reported = output.match(/Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/);
      assert.ok(reported, output);
      const size = verdict.passed.find((line) => line.startsWith("upload "));
      const counted = Number(size.match(/gzip ([\d.]+) KiB/)[1]);
      assert.ok(counted >= Number(reported[1]) - 0.1, `${size} vs wrangler's ${reported[0]}`);
      assert.ok(counted * 1024 <= DEFAULT_MAX_GZIP_BYTES);
    });

    test("refuses a missing binding and a Durable Object of the wrong class", () => {
      const required = { ...DATABASE_BINDINGS.d1, ...REQUIRED_BINDINGS };
      for (const name of Object.keys(required)) {
        const { failures } = checkUpload(withBindings((all) => all.filter((b) => b.name !== name)));
        assert.deepEqual(failures, [`binding ${name} (${required[name].type}) is missing`]);
      }
      const swapped = withBindings((all) =>
        all.map((b) => (b.name === "METRICS" ? { ...b, class_name: "RateLimiter" } : b)),
      );
      assert.deepEqual(checkUpload(swapped).failures, [
        "binding METRICS uses class RateLimiter, expected MetricsAggregator",
      ]);
    });

    test("DATABASE=postgres needs the Hyperdrive binding instead of D1; another value is refused", () => {
      const postgres = (extra) =>
        withBindings((all) => [
          ...all.filter((b) => b.name !== "DB"),
          { name: "DATABASE", type: "plain_text", text: "postgres" },
          ...extra,
        ]);
      assert.deepEqual(checkUpload(postgres([])).failures, [
        "binding HYPERDRIVE (hyperdrive) is missing",
      ]);
      const served = checkUpload(postgres([{ name: "HYPERDRIVE", type: "hyperdrive", id: "x" }]));
      assert.deepEqual(served.failures, []);
      assert.ok(served.passed.some((line) => line.startsWith("bindings HYPERDRIVE, KV")), served.passed);
      const unknown = withBindings((all) => [...all, { name: "DATABASE", type: "plain_text", text: "mysql" }]);
      assert.deepEqual(checkUpload(unknown).failures, ['DATABASE is "mysql": it must be d1 or postgres']);
    });

    test("refuses an upload over the gzip budget", () => {
      const { failures } = checkUpload(upload, { maxGzipBytes: 100 * 1024 });
      assert.equal(failures.length, 1);
      assert.match(failures[0], /^upload [\d.]+ KiB, gzip [\d.]+ KiB \(budget 100\.0 KiB gzip\): over budget$/);
    });

    test("refuses a missing or non-text ENVIRONMENT and an outbox in any case", () => {
      const missing = checkUpload(withBindings((all) => all.filter((b) => b.name !== "ENVIRONMENT")));
      assert.match(missing.failures.join("\n"), /ENVIRONMENT is not set/);
      const json = checkUpload(
        withBindings((all) =>
          all.map((b) => (b.name === "ENVIRONMENT" ? { name: b.name, type: "json", json: "production" } : b)),
        ),
      );
      assert.match(json.failures.join("\n"), /ENVIRONMENT is a json binding/);
      const outbox = checkUpload(
        withBindings((all) => [...all, { name: "EMAIL_PROVIDER", type: "plain_text", text: " Outbox " }]),
      );
      assert.match(outbox.failures.join("\n"), /EMAIL_PROVIDER is "outbox"/);
    });

    test("notes what a real deploy still needs, and --strict refuses it", () => {
      const relaxed = checkUpload(upload);
      assert.deepEqual(relaxed.failures, []);
      for (const expected of [/^JWT_ISSUER is not set/, /^JWT_AUDIENCE is not set/, /^ALLOWED_HOSTS is not set/, /^DB has the placeholder/, /^KV has the placeholder/]) {
        assert.ok(relaxed.notes.some((note) => expected.test(note)), `${expected} in ${relaxed.notes}`);
      }
      const strict = checkUpload(upload, { strict: true });
      assert.deepEqual(strict.notes, []);
      assert.deepEqual(strict.failures, relaxed.notes);
    });
  });

  test("--prebuilt drops [build] tables and nothing else", () => {
    const stripped = withoutBuild(WRANGLER_TOML);
    assert.doesNotMatch(stripped, /^\s*\[build\]/m);
    assert.doesNotMatch(stripped, /scripts\/build\.sh/);
    // Every setting but the build command stays (comments inside the table go with it).
    const settings = (text) => text.split("\n").filter((line) => line.trim() && !line.trim().startsWith("#"));
    assert.deepEqual(
      settings(stripped),
      settings(WRANGLER_TOML).filter((line) => line !== "[build]" && !line.startsWith("command = ")),
    );
    const sample = [
      'name = "x"',
      "[build]",
      'command = "make"',
      "[vars]",
      'A = "1"',
      '[env.production.build]',
      'command = "make prod"',
      "[[env.production.d1_databases]]",
      'binding = "DB"',
    ].join("\n");
    assert.equal(
      withoutBuild(sample),
      ['name = "x"', "[vars]", 'A = "1"', "[[env.production.d1_databases]]", 'binding = "DB"'].join("\n"),
    );
  });
});
