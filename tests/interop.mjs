// Independent verifiers for the interop suite: PyJWT in a venv of its own, created on first use
// under .cache/ (gitignored) and reused while tests/interop/requirements.txt is unchanged, so
// only python3 is needed on a fresh machine and a second run starts at once.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./helpers.mjs";

const run = promisify(execFile);
const VENV = join(ROOT, ".cache", "pyjwt-venv");
const REQUIREMENTS = join(ROOT, "tests", "interop", "requirements.txt");

let ready;
/** The venv's python, creating the venv and installing the pinned PyJWT when needed. */
export function pyjwtPython() {
  ready ??= (async () => {
    const python = join(VENV, "bin", "python");
    const stamp = join(VENV, "requirements.txt");
    const wanted = readFileSync(REQUIREMENTS, "utf8");
    if (existsSync(python) && existsSync(stamp) && readFileSync(stamp, "utf8") === wanted) return python;
    rmSync(VENV, { recursive: true, force: true });
    mkdirSync(join(ROOT, ".cache"), { recursive: true });
    await run("python3", ["-m", "venv", VENV]);
    await run(python, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS], {
      maxBuffer: 16 * 1024 * 1024,
    });
    writeFileSync(stamp, wanted);
    return python;
  })();
  return ready;
}

/**
 * Verify `cases` ({name, token, now?, audience?}) with PyJWT's PyJWKClient against the live
 * JWKS at `jwksUrl`; resolves to {name: "ok:<sub>" | exception class name}.
 */
export async function pyjwtVerify({ jwksUrl, alg, issuer, audience, cases }) {
  const python = await pyjwtPython();
  const child = run(python, [join(ROOT, "tests", "interop", "pyjwt_verify.py"), jwksUrl, alg, issuer, audience]);
  child.child.stdin.end(JSON.stringify(cases));
  const { stdout } = await child;
  return JSON.parse(stdout);
}
