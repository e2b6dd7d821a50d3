// The layer check (scripts/check-layers.mjs): the crate's imports point down its layers
// (domain, store, http, routes, ...) and never run in a circle. It passes on the real tree,
// and each rule is shown to fail on a small tree that breaks it.
import { test, describe, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { check } from "../scripts/check-layers.mjs";
import { ROOT, runCommand } from "./helpers.mjs";

const dirs = [];

/** A throw-away `src/` holding the given files (path relative to src -> contents). */
function tree(files) {
  const src = join(mkdtempSync(join(tmpdir(), "edge-auth-layers-")), "src");
  dirs.push(dirname(src));
  const all = {
    "lib.rs": "pub mod domain;\npub mod store;\npub mod http;\n",
    "domain/mod.rs": "pub mod user;\n",
    "domain/user.rs": "pub fn name() {}\n",
    "store/mod.rs": "pub mod users;\n",
    "store/users.rs": "use crate::domain::user::name;\n",
    "http/mod.rs": "pub mod auth;\n",
    "http/auth.rs": "use crate::store::users;\n",
    ...files,
  };
  for (const [path, text] of Object.entries(all)) {
    mkdirSync(dirname(join(src, path)), { recursive: true });
    writeFileSync(join(src, path), text);
  }
  return src;
}

describe("the layer check", () => {
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  test("the crate's own imports point down and run in no circle", async () => {
    assert.deepEqual(check(join(ROOT, "src")), []);
    const run = await runCommand("node", [join(ROOT, "scripts/check-layers.mjs")], { cwd: ROOT });
    assert.equal(run.code, 0, run.stderr);
  });

  test("a well-layered tree passes", () => {
    assert.deepEqual(check(tree({})), []);
  });

  test("an upward import fails and names the file and the layers", async () => {
    const src = tree({ "domain/user.rs": "use crate::http::auth;\npub fn name() {}\n" });
    const findings = check(src);
    assert.equal(findings.length, 2, findings.join("\n"));
    assert.match(findings[0], /^domain\/user\.rs: imports http::auth, a layer above 'domain' \('http'\)$/);
    assert.match(findings[1], /^import circle: /);
    const run = await runCommand("node", [join(ROOT, "scripts/check-layers.mjs"), src], { cwd: ROOT });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /a layer above 'domain'/);
  });

  test("an upward path used inline, without a use line, fails too", () => {
    const findings = check(tree({ "store/users.rs": "fn f() { crate::http::auth::x(); }\n" }));
    assert.ok(findings.some((line) => /store\/users\.rs: imports http::auth::x/.test(line)), findings.join("\n"));
  });

  test("two files of one layer importing each other are a circle", () => {
    const findings = check(
      tree({
        "store/mod.rs": "pub mod users;\npub mod roles;\n",
        "store/users.rs": "use super::roles::Role;\n",
        "store/roles.rs": "use crate::store::users::User;\n",
      }),
    );
    assert.deepEqual(findings, ["import circle: store/roles.rs -> store/users.rs"]);
  });

  test("the pure layers may not use the Workers runtime", () => {
    const findings = check(tree({ "domain/user.rs": "pub fn now() -> f64 { worker::Date::now().as_millis() as f64 }\n" }));
    assert.deepEqual(findings, ["domain/user.rs: 'domain' is pure logic and must not use the Workers runtime"]);
  });

  test("a module with no layer is refused until it is given one", () => {
    const findings = check(tree({ "widgets.rs": "pub fn w() {}\n" }));
    assert.deepEqual(findings, [
      "widgets.rs: module 'widgets' has no layer; add it to LAYERS in scripts/check-layers.mjs",
    ]);
  });

  test("test modules and comments are not read", () => {
    const findings = check(
      tree({
        "domain/user.rs":
          "// crate::http::auth is only named here\npub fn name() {}\n#[cfg(test)]\nmod tests {\n    use crate::http::auth;\n}\n",
      }),
    );
    assert.deepEqual(findings, []);
  });
});
