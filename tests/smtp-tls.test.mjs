// SMTP delivery over TLS: SMTP_SECURITY=starttls and =tls against a local smtp-server holding
// a throw-away CA and certificates made at test time with the openssl CLI (in a temporary
// directory removed at once; the keys only live in memory). workerd verifies server
// certificates, so the Worker's outbound network is told to trust that CA and nothing else
// (Miniflare `outboundService: { network: { tlsOptions: { trustedCertificates } } }`). Covers
// delivery (TLS before AUTH and MAIL FROM, AUTH, the message itself) and the fail-closed cases:
// STARTTLS required but not offered, a self-signed certificate, a certificate naming another host.
import { test, describe, before } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer } from "smtp-server";
import { startWorker, address, waitFor } from "./helpers.mjs";

const SMTP_HOST = "localhost";
const USERNAME = "mailer";
const PASSWORD = "relay-secret";
const NEW_PASSWORD = "a completely new passphrase";

/**
 * A throw-away CA, a certificate it signs for localhost, one it signs for another host, and a
 * self-signed one for localhost; every key is P-256 and every certificate valid for a day.
 */
function makeCertificates() {
  const dir = mkdtempSync(join(tmpdir(), "edge-auth-smtp-tls-"));
  const openssl = (...args) => {
    try {
      execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
    } catch (error) {
      throw new Error(
        error.code === "ENOENT"
          ? "these tests make their certificates with the openssl CLI, which is not installed"
          : `openssl ${args[0]} failed: ${error.stderr ?? error.message}`,
      );
    }
  };
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const leafExtensions = (names) =>
    [
      `subjectAltName=${names}`,
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
    ].join("\n");
  const read = (name) => readFileSync(join(dir, name), "utf8");
  try {
    openssl("req", "-x509", ...newKey, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
      "-subj", "/CN=edge-auth throw-away test CA",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign");
    const signed = (name, subject, names) => {
      writeFileSync(join(dir, `${name}.ext`), leafExtensions(names));
      openssl("req", "-new", ...newKey, "-keyout", `${name}.key`, "-out", `${name}.csr`,
        "-subj", subject);
      openssl("x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", `0x01${randomBytes(8).toString("hex")}`, "-days", "1",
        "-extfile", `${name}.ext`, "-out", `${name}.pem`);
      return { key: read(`${name}.key`), cert: read(`${name}.pem`) };
    };
    const localhost = signed("localhost", "/CN=localhost", "DNS:localhost,IP:127.0.0.1");
    const otherHost = signed("other", "/CN=mail.other.test", "DNS:mail.other.test");
    openssl("req", "-x509", ...newKey, "-keyout", "self.key", "-out", "self.pem", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    const selfSigned = { key: read("self.key"), cert: read("self.pem") };
    return { ca: read("ca.pem"), localhost, otherHost, selfSigned };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Miniflare options for a Worker whose outbound connections trust `ca` and nothing else. */
function trusting(ca) {
  return {
    outboundService: {
      network: {
        // As Miniflare's default "internet" service, which lets Workers reach loopback.
        allow: ["public", "private", "240.0.0.0/4"],
        deny: [],
        tlsOptions: { trustBrowserCas: false, trustedCertificates: [ca] },
      },
    },
  };
}

/**
 * A local relay. `security` "tls" speaks TLS from the first byte, anything else starts in
 * plain text and offers STARTTLS unless `offerStartTls` is false (it then takes AUTH in plain
 * text: a client that fell back would be served). `transcript` lists, in order and per
 * connection, the commands received, when TLS came up (`tls TLSv1.3`) and the AUTH outcome.
 */
async function startRelay({ security, certificate, offerStartTls = true }) {
  const transcript = [];
  const messages = [];
  const note = (id, event) => transcript.push({ id, event });
  const quiet = () => {};
  const server = new SMTPServer({
    secure: security === "tls",
    ...certificate,
    disabledCommands: offerStartTls ? [] : ["STARTTLS"],
    allowInsecureAuth: !offerStartTls,
    authMethods: ["PLAIN", "LOGIN"],
    disableReverseLookup: true,
    socketTimeout: 10_000,
    logger: {
      debug(entry, ...parts) {
        if (entry.tnx === "command") note(entry.cid, parts.slice(1).join(" "));
      },
      trace: quiet,
      info: quiet,
      warn: quiet,
      error: quiet,
      fatal: quiet,
    },
    onSecure(socket, session, callback) {
      note(session.id, `tls ${socket.getProtocol()}`);
      callback();
    },
    onAuth(auth, session, callback) {
      const ok = auth.username === USERNAME && auth.password === PASSWORD;
      note(session.id, `auth ${ok ? "accepted" : "refused"} secure=${session.secure}`);
      if (ok) callback(null, { user: auth.username });
      else callback(new Error("bad credentials"));
    },
    onData(stream, session, callback) {
      let data = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => (data += chunk));
      stream.on("end", () => {
        messages.push({
          id: session.id,
          data,
          secure: session.secure,
          servername: session.servername,
          transmissionType: session.transmissionType,
          user: session.user,
          from: session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
        });
        callback();
      });
    },
  });
  server.on("error", quiet); // a client refusing our certificate is expected in some tests
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.server.address().port,
    transcript,
    messages,
    /** The events of one connection, in order. */
    session: (id) => transcript.filter((entry) => entry.id === id).map((entry) => entry.event),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A Worker sending through the relay on `port` with `security`; `options` for Miniflare. */
function startMailer(port, security, options = {}) {
  return startWorker({
    vars: {
      EMAIL_PROVIDER: "smtp",
      SMTP_HOST,
      SMTP_PORT: String(port),
      SMTP_SECURITY: security,
      SMTP_USERNAME: USERNAME,
      SMTP_PASSWORD: PASSWORD,
      EMAIL_FROM: "Acme <no-reply@acme.test>",
      PUBLIC_BASE_URL: "https://auth.acme.test",
      APP_NAME: "Acme",
    },
    options,
  });
}

/** A relay and a Worker for one test, both gone when `body` ends. */
async function withRelay(relayOptions, workerOptions, body) {
  const relay = await startRelay(relayOptions);
  let worker;
  try {
    worker = await startMailer(relay.port, relayOptions.security, workerOptions);
    await body(relay, worker);
  } finally {
    await worker?.dispose();
    await relay.close();
  }
}

/** The decoded parts of a multipart/alternative message as the Worker writes it. */
function parts(data) {
  const boundary = data.match(/boundary="([^"]+)"/)[1];
  return data
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((part) => {
      const [head, body] = part.split("\r\n\r\n");
      return {
        type: head.match(/Content-Type: ([^;\r\n]+)/)[1],
        body: Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8"),
      };
    });
}

/** The Worker's email_delivery_failed lines for `purpose`, parsed. */
function deliveryFailures(worker, purpose) {
  return worker.logs
    .filter((line) => line.includes('"email_delivery_failed"'))
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.purpose === purpose);
}

let certificates;
before(() => {
  certificates = makeCertificates();
});

for (const security of ["starttls", "tls"]) {
  describe(`SMTP_SECURITY=${security}`, () => {
    test("a password reset is delivered over verified TLS, with AUTH, and its link works", async () => {
      await withRelay(
        { security, certificate: certificates.localhost },
        trusting(certificates.ca),
        async (relay, worker) => {
          const email = address("tls");
          await worker.signup({ email });
          const reset = await worker.request("POST", "/api/v1/auth/password/reset", {
            body: { email },
          });
          assert.equal(reset.status, 202, reset.text);
          const message = await waitFor(
            () => relay.messages.find((m) => / Reset your Acme password\r\n/.test(m.data)),
            "the reset message",
          );

          assert.equal(message.secure, true);
          assert.equal(message.servername, SMTP_HOST, "SNI names the configured host");
          assert.equal(message.transmissionType, "ESMTPSA", "ESMTP, over TLS, authenticated");
          assert.equal(message.user, USERNAME);
          assert.equal(message.from, "no-reply@acme.test");
          assert.deepEqual(message.to, [email]);

          const events = relay.session(message.id);
          const tls = events.findIndex((event) => /^tls TLSv1\.[23]$/.test(event));
          assert.ok(tls >= 0, `TLS came up: ${events.join(" | ")}`);
          const afterTls = [
            "EHLO acme.test",
            "AUTH PLAIN /* secured */",
            "auth accepted secure=true",
            "MAIL FROM:<no-reply@acme.test>",
            `RCPT TO:<${email}>`,
            "DATA",
          ];
          assert.deepEqual(events.slice(tls + 1, tls + 1 + afterTls.length), afterTls);
          assert.deepEqual(
            events.slice(0, tls),
            security === "starttls" ? ["EHLO acme.test", "STARTTLS"] : [],
            "nothing but EHLO and STARTTLS in plain text",
          );

          assert.match(message.data, /^From: Acme <no-reply@acme\.test>\r$/m);
          assert.ok(message.data.includes(`\r\nTo: ${email}\r\n`));
          const [text, html] = parts(message.data);
          assert.equal(text.type, "text/plain");
          assert.equal(html.type, "text/html");
          assert.match(text.body, /reset the password of your Acme account/);
          assert.match(text.body, /Or enter this code: \d{6}/);
          const token = text.body.match(
            /Choose a new password: https:\/\/auth\.acme\.test\/reset-password\?token=([A-Za-z0-9_-]{43})/,
          )?.[1];
          assert.ok(token, text.body);
          assert.ok(html.body.includes(`href="https://auth.acme.test/reset-password?token=${token}"`));

          const confirm = await worker.request("POST", "/api/v1/auth/password/reset/confirm", {
            body: { token, new_password: NEW_PASSWORD },
          });
          assert.equal(confirm.status, 200, "the delivered token is the real one");
          await waitFor(
            () => worker.logs.some((line) => line.includes('"email_sent"') && line.includes('"reset_password"')),
            "the email_sent line",
          );
        },
      );
    });

    test("a self-signed certificate gets no AUTH and no message", async () => {
      // The Worker's default trust (Miniflare's: public CAs and the system's), as in production.
      await withRelay({ security, certificate: certificates.selfSigned }, {}, async (relay, worker) => {
        await worker.signup({ email: address("selfsigned") });
        const failure = await waitFor(
          () => deliveryFailures(worker, "verify_email")[0],
          "the email_delivery_failed line",
        );
        assert.equal(failure.attempts, 3);
        assert.ok(
          worker.logs.some((line) => /certificate is not trusted; reason = .*(self.signed|local issuer)/i.test(line)),
          "workerd refused the certificate",
        );
        assertNothingSent(relay, security);
      });
    });

    test("a certificate from the trusted CA for another host gets no AUTH and no message", async () => {
      await withRelay(
        { security, certificate: certificates.otherHost },
        trusting(certificates.ca),
        async (relay, worker) => {
          await worker.signup({ email: address("otherhost") });
          const failure = await waitFor(
            () => deliveryFailures(worker, "verify_email")[0],
            "the email_delivery_failed line",
          );
          assert.equal(failure.attempts, 3);
          assert.ok(
            worker.logs.some((line) => /certificate is not trusted; reason = Hostname mismatch/.test(line)),
            "workerd refused the certificate for its name",
          );
          assertNothingSent(relay, security);
        },
      );
    });
  });
}

/** No credentials and no envelope or message reached the relay, on any connection. */
function assertNothingSent(relay, security) {
  assert.equal(relay.messages.length, 0);
  const commands = relay.transcript
    .map((entry) => entry.event)
    .filter((event) => !event.startsWith("tls "));
  const allowed = security === "starttls" ? ["EHLO acme.test", "STARTTLS"] : [];
  assert.deepEqual(
    commands.filter((command) => !allowed.includes(command)),
    [],
    "no command beyond the TLS negotiation",
  );
}

describe("SMTP_SECURITY=starttls against a relay that does not offer STARTTLS", () => {
  test("nothing is sent in plain text, the failure is logged, the answers keep their shape", async () => {
    await withRelay(
      { security: "starttls", certificate: certificates.localhost, offerStartTls: false },
      trusting(certificates.ca),
      async (relay, worker) => {
        const email = address("plain");
        const account = await worker.signup({ email });
        assert.equal(account.user.email, email);
        const known = await worker.request("POST", "/api/v1/auth/password/reset", {
          body: { email },
        });
        const unknown = await worker.request("POST", "/api/v1/auth/password/reset", {
          body: { email: address("nobody") },
        });
        assert.equal(known.status, 202);
        assert.equal(unknown.status, 202);
        assert.deepEqual(known.json, unknown.json);

        for (const purpose of ["verify_email", "reset_password"]) {
          const failure = await waitFor(
            () => deliveryFailures(worker, purpose)[0],
            `the email_delivery_failed line for ${purpose}`,
          );
          assert.equal(failure.level, "error");
          assert.equal(failure.attempts, 3);
          assert.match(failure.error, /does not offer STARTTLS/);
          assert.ok(!JSON.stringify(failure).includes(email), "the address is masked");
        }
        assert.equal(relay.messages.length, 0);
        const commands = relay.transcript.map((entry) => entry.event);
        assert.equal(commands.length, 6, `3 attempts for each of 2 messages: ${commands}`);
        assert.deepEqual(new Set(commands), new Set(["EHLO acme.test"]), "only EHLO, never AUTH or MAIL");
        assert.ok(!worker.logs.some((line) => line.includes('"email_sent"')));
      },
    );
  });
});
