// Checks that the crate's imports point down its layers and never run in a circle:
//
//   error < domain < runtime, config < env < store < mail, objects < service < http < routes
//   < scheduled < lib
//
// A file may use its own layer and the ones below it. `domain` and `error` are pure: no
// `worker`, `wasm_bindgen`, `js_sys` or `web_sys`. No two files may import each other, directly
// or around a longer circle. Test modules (`#[cfg(test)] mod tests`) are not read.
//
//   node scripts/check-layers.mjs [SRC_DIR]     exit 0 when all holds, 1 with the findings
import { readdirSync, readFileSync, existsSync, statSync } from "node:fs";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** Each top-level module's layer; a higher layer may import a lower one, never the reverse. */
export const LAYERS = {
  error: 0,
  domain: 1,
  runtime: 2,
  config: 2,
  env: 3,
  store: 4,
  mail: 5,
  objects: 5,
  service: 6,
  http: 7,
  routes: 8,
  scheduled: 9,
  lib: 10,
};

/** Modules that must stay free of the runtime (unit-tested natively). */
const PURE = new Set(["error", "domain"]);
const RUNTIME_CRATES = /\b(worker|wasm_bindgen|js_sys|web_sys)::/;

function rustFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return rustFiles(path);
    return name.endsWith(".rs") ? [path] : [];
  });
}

/** The module path of a file: `src/a/b.rs` and `src/a/b/mod.rs` are `["a", "b"]`. */
function modulePath(src, file) {
  const parts = relative(src, file).replace(/\.rs$/, "").split("/");
  if (parts.at(-1) === "mod" || (parts.length === 1 && parts[0] === "lib")) parts.pop();
  return parts;
}

/** The source without comments, string contents and the test module. */
function code(text) {
  const withoutTests = text.split(/#\[cfg\(test\)\]\s*mod\s+tests\b/)[0];
  return withoutTests
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "")
    .replace(/"(?:[^"\\]|\\.)*"/g, '""');
}

/** Expand `a::{b, c::d}` into `a::b`, `a::c::d` (one level of braces is all the crate uses). */
function expand(path) {
  const plain = path.replace(/\s+as\s+[A-Za-z_][A-Za-z0-9_]*/g, "").replace(/\s+/g, "");
  const match = /^(.*?)::\{([^{}]*)\}$/.exec(plain);
  if (!match) return [plain];
  return match[2]
    .split(",")
    .filter(Boolean)
    .map((item) => (item === "self" ? match[1] : `${match[1]}::${item}`));
}

/** The module paths a file refers to: `use` items, inline `crate::` paths, child modules. */
function references(text, own) {
  const body = code(text);
  const found = [];
  for (const match of body.matchAll(/\buse\s+((?:crate|super|self)::[^;]+);/g)) {
    for (const path of expand(match[1])) found.push(path);
  }
  for (const match of body.matchAll(/\bcrate(?:::[A-Za-z_][A-Za-z0-9_]*)+/g)) found.push(match[0]);
  for (const match of body.matchAll(/\bmod\s+([a-z_][a-z0-9_]*)\s*;/g)) {
    if (new RegExp(`\\b${match[1]}::`).test(body.replace(match[0], ""))) found.push(`self::${match[1]}`);
  }
  return [...new Set(found)].map((path) => {
    const segments = path.split("::");
    if (segments[0] === "crate") return segments.slice(1);
    // `self` is the file's own module (`store::users` for store/users.rs and
    // store/users/mod.rs alike); each `super` climbs one module.
    if (segments[0] === "self") return [...own, ...segments.slice(1)];
    let at = [...own];
    while (segments[0] === "super") {
      at = at.slice(0, -1);
      segments.shift();
    }
    return [...at, ...segments];
  });
}

/** The file that defines the longest prefix of a module path, if it is in the crate. */
function resolve(src, segments) {
  for (let length = segments.length; length >= 1; length -= 1) {
    const prefix = segments.slice(0, length).join("/");
    for (const candidate of [join(src, `${prefix}.rs`), join(src, prefix, "mod.rs")]) {
      if (existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/** Strongly connected components with more than one file (Tarjan). */
function circles(graph) {
  let index = 0;
  const stack = [];
  const state = new Map();
  const found = [];
  const visit = (node) => {
    state.set(node, { index, low: index, onStack: true });
    index += 1;
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!state.has(next)) {
        visit(next);
        state.get(node).low = Math.min(state.get(node).low, state.get(next).low);
      } else if (state.get(next).onStack) {
        state.get(node).low = Math.min(state.get(node).low, state.get(next).index);
      }
    }
    if (state.get(node).low === state.get(node).index) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        state.get(member).onStack = false;
        component.push(member);
      } while (member !== node);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return found;
}

/** Every finding for the crate under `src`, as sentences; empty when all holds. */
export function check(src) {
  const findings = [];
  const graph = new Map();
  const layerOf = (segments) => (segments.length === 0 ? "lib" : segments[0]);
  for (const file of rustFiles(src).sort()) {
    const text = readFileSync(file, "utf8");
    const own = modulePath(src, file);
    const name = relative(src, file);
    const layer = layerOf(own);
    if (!(layer in LAYERS)) {
      findings.push(`${name}: module '${layer}' has no layer; add it to LAYERS in scripts/check-layers.mjs`);
      continue;
    }
    if (PURE.has(layer) && RUNTIME_CRATES.test(code(text))) {
      findings.push(`${name}: '${layer}' is pure logic and must not use the Workers runtime`);
    }
    const targets = new Set();
    const seen = new Set();
    for (const segments of references(text, own)) {
      const key = segments.join("::");
      if (seen.has(key)) continue;
      seen.add(key);
      const target = layerOf(segments);
      if (target in LAYERS && LAYERS[target] > LAYERS[layer]) {
        findings.push(`${name}: imports ${segments.join("::")}, a layer above '${layer}' ('${target}')`);
      }
      const resolved = resolve(src, segments);
      if (resolved && resolved !== file) targets.add(resolved);
    }
    graph.set(file, targets);
  }
  for (const component of circles(graph)) {
    findings.push(`import circle: ${component.map((file) => relative(src, file)).join(" -> ")}`);
  }
  return findings;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const src = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..", "src");
  const findings = check(src);
  for (const finding of findings) console.error(`[layers] ${finding}`);
  if (findings.length === 0) console.log("[layers] imports point down; no circles");
  process.exit(findings.length === 0 ? 0 : 1);
}
