// The account-security page: sign in with a password (then a second factor when the account
// has one: a passkey, an authenticator-app code or a recovery code) or a passkey; list, add,
// rename and delete passkeys; set up an authenticator app; step up when a change asks for it. Same-origin script only (the page's CSP forbids inline code). The access
// token stays in this page's memory: a reload signs out of the page (the session lives on
// until it is signed out or expires).
"use strict";

const state = { token: null, user: null, mfa: null, hasTotp: false, passkeyCount: 0, stepUp: null };
const $ = (id) => document.getElementById(id);

// --- base64url <-> ArrayBuffer (WebAuthn's binary members travel as base64url) ---
function toBuffer(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function toBase64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function creationOptions(json) {
  return {
    ...json,
    challenge: toBuffer(json.challenge),
    user: { ...json.user, id: toBuffer(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
  };
}

function requestOptions(json) {
  return {
    ...json,
    challenge: toBuffer(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: toBuffer(c.id) })),
  };
}

function registrationJson(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      attestationObject: toBase64url(response.attestationObject),
      transports: typeof response.getTransports === "function" ? response.getTransports() : [],
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

function assertionJson(credential) {
  const response = credential.response;
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: toBase64url(response.clientDataJSON),
      authenticatorData: toBase64url(response.authenticatorData),
      signature: toBase64url(response.signature),
      userHandle: response.userHandle ? toBase64url(response.userHandle) : null,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

// --- the API ---
async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (state.token) headers.authorization = `Bearer ${state.token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new Error((data && data.detail) || `${response.status}`);
    error.status = response.status;
    error.problem = data;
    throw error;
  }
  return data;
}

/** A typed code: six digits are an app's code, anything else a recovery code. */
function codeBody(value) {
  const code = value.replace(/\s+/g, "");
  return /^\d{6}$/.test(code) ? { code } : { recovery_code: code };
}

const SVG_NS = "http://www.w3.org/2000/svg";
const SVG_ELEMENTS = new Set(["svg", "title", "desc", "rect", "path"]);
const SVG_ATTRIBUTES = new Set(["xmlns", "viewBox", "role", "shape-rendering", "width", "height", "x", "y", "fill", "d"]);

/**
 * The server's QR code SVG markup as a node of this page: parsed as XML (never as HTML, no
 * innerHTML) and kept to drawing elements and attributes, then imported. The page's CSP
 * allows images only from 'self' (no data: URLs), and inline SVG needs no image source.
 */
function svgNode(markup) {
  const parsed = new DOMParser().parseFromString(markup, "image/svg+xml");
  const svg = parsed.documentElement;
  if (svg.namespaceURI !== SVG_NS || svg.localName !== "svg" || parsed.getElementsByTagName("parsererror").length) {
    throw new Error("The QR code could not be shown; type in the key instead.");
  }
  for (const element of [svg, ...svg.querySelectorAll("*")]) {
    if (element.namespaceURI !== SVG_NS || !SVG_ELEMENTS.has(element.localName)) {
      element.remove();
      continue;
    }
    for (const { name } of [...element.attributes]) {
      if (!SVG_ATTRIBUTES.has(name)) element.removeAttribute(name);
    }
  }
  return document.importNode(svg, true);
}

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function fail(error) {
  if (error && error.name === "StepUpCancelled") {
    if (!error.quiet) say(error.message);
  } else if (error && error.name === "NotAllowedError") say("The passkey request was cancelled or timed out.", true);
  else say(error && error.message ? error.message : String(error), true);
}

// --- signed in / out ---
function signedIn(tokens) {
  state.token = tokens.access_token;
  state.user = tokens.user;
  state.mfa = null;
  $("who").textContent = tokens.user.username;
  $("signed-out").hidden = true;
  $("second-factor").hidden = true;
  $("signed-in").hidden = false;
  return Promise.all([refreshPasskeys(), refreshFactors()]);
}

function signedOut() {
  state.token = null;
  state.user = null;
  state.mfa = null;
  cancelStepUp(true);
  $("signed-in").hidden = true;
  $("second-factor").hidden = true;
  $("signed-out").hidden = false;
  $("passkeys").replaceChildren();
  $("totp-enrol").hidden = true;
  $("totp-qr").replaceChildren();
  $("totp-secret").textContent = "";
  $("recovery").hidden = true;
  $("recovery-codes").replaceChildren();
}

async function refreshPasskeys() {
  const { passkeys } = await api("GET", "/api/v1/users/me/passkeys");
  const list = $("passkeys");
  list.replaceChildren(...passkeys.map(passkeyItem));
  $("no-passkeys").hidden = passkeys.length > 0;
  state.passkeyCount = passkeys.length;
}

async function refreshFactors() {
  const { factors, recovery_codes_remaining: remaining } = await api("GET", "/api/v1/users/me/mfa");
  const app = factors.find((factor) => factor.kind === "totp" && factor.confirmed);
  state.hasTotp = Boolean(app);
  $("app-status").textContent = app
    ? `On since ${app.created_at}. ${remaining} recovery code${remaining === 1 ? "" : "s"} left.`
    : "Not set up.";
  $("totp-start").hidden = Boolean(app) || !$("totp-enrol").hidden;
}

function passkeyItem(passkey) {
  const item = document.createElement("li");
  item.dataset.id = passkey.id;
  const name = document.createElement("strong");
  name.className = "name";
  name.textContent = passkey.name;
  const meta = document.createElement("div");
  meta.className = "meta";
  const used = passkey.last_used_at ? `last used ${passkey.last_used_at}` : "never used";
  meta.textContent = `Added ${passkey.created_at}, ${used}${passkey.backed_up ? ", synced" : ""}`;

  const form = document.createElement("form");
  const input = document.createElement("input");
  input.name = "name";
  input.maxLength = 64;
  input.value = passkey.name;
  input.setAttribute("aria-label", `New name for passkey ${passkey.name}`);
  const rename = document.createElement("button");
  rename.type = "submit";
  rename.textContent = "Rename";
  rename.setAttribute("aria-label", `Rename passkey ${passkey.name}`);
  form.append(input, rename);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api("PATCH", `/api/v1/users/me/passkeys/${passkey.id}`, { name: input.value })
      .then((renamed) => say(`Renamed to ${renamed.name}.`))
      .then(refreshPasskeys)
      .catch(fail);
  });

  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete passkey ${passkey.name}`);
  remove.addEventListener("click", () => {
    withStepUp(() => api("DELETE", `/api/v1/users/me/passkeys/${passkey.id}`))
      .then(() => say(`Deleted ${passkey.name}.`))
      .then(refreshPasskeys)
      .catch(fail);
  });

  item.append(name, meta, form, remove);
  return item;
}

// --- the ceremonies ---
async function signInWithPassword(event) {
  event.preventDefault();
  const identifier = $("identifier").value.trim();
  const body = { password: $("password").value };
  if (identifier.includes("@")) body.email = identifier;
  else body.username = identifier;
  const tokens = await api("POST", "/api/v1/auth/login", body);
  $("password").value = "";
  if (tokens.mfa_required) {
    askSecondFactor(tokens);
    return;
  }
  await signedIn(tokens);
  say(`Signed in as ${tokens.user.username}.`);
}

async function signInWithPasskey() {
  const options = await api("POST", "/api/v1/auth/passkey/options");
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  const tokens = await api("POST", "/api/v1/auth/passkey/verify", { response: assertionJson(credential) });
  await signedIn(tokens);
  say(`Signed in with a passkey as ${tokens.user.username}.`);
}

async function addPasskey(event) {
  event.preventDefault();
  const options = await withStepUp(() => api("POST", "/api/v1/users/me/passkeys/options"));
  const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  const name = $("new-passkey-name").value.trim();
  const body = { response: registrationJson(credential) };
  if (name) body.name = name;
  const passkey = await api("POST", "/api/v1/users/me/passkeys", body);
  $("new-passkey-name").value = "";
  say(`Added passkey ${passkey.name}.`);
  await refreshPasskeys();
}

// --- the second factor of a password sign-in ---
function askSecondFactor({ mfa_token: token, factors }) {
  state.mfa = { token };
  $("mfa-passkey").hidden = !factors.includes("passkey") || !window.PublicKeyCredential;
  $("mfa-code-form").hidden = !factors.includes("totp");
  $("signed-out").hidden = true;
  $("second-factor").hidden = false;
  say("Password accepted: one more step.");
  const first = $("mfa-passkey").hidden ? $("mfa-code") : $("mfa-passkey");
  first.focus();
}

async function finishWith(body) {
  const tokens = await api("POST", "/api/v1/auth/mfa/verify", { mfa_token: state.mfa.token, ...body });
  await signedIn(tokens);
  say(`Signed in as ${tokens.user.username}.`);
}

async function secondFactorPasskey() {
  const options = await api("POST", "/api/v1/auth/mfa/passkey/options", { mfa_token: state.mfa.token });
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  await finishWith({ passkey: assertionJson(credential) });
}

async function secondFactorCode(event) {
  event.preventDefault();
  await finishWith(codeBody($("mfa-code").value));
  $("mfa-code").value = "";
}

function cancelSecondFactor() {
  state.mfa = null;
  $("mfa-code").value = "";
  $("second-factor").hidden = true;
  $("signed-out").hidden = false;
  say("Sign-in cancelled.");
}

// --- step-up: a change the server refuses with 403 step_up_required until the session
// proves its second factor again; then the change is retried once ---
async function withStepUp(action) {
  try {
    return await action();
  } catch (error) {
    if (!(error.status === 403 && error.problem && String(error.problem.type).endsWith(":step_up_required"))) throw error;
    await stepUp();
    return action();
  }
}

function stepUp() {
  cancelStepUp();
  $("step-up-passkey").hidden = state.passkeyCount === 0 || !window.PublicKeyCredential;
  $("step-up-code-form").hidden = !state.hasTotp;
  $("step-up").hidden = false;
  say("This change needs your second factor: confirm it is you.");
  ($("step-up-passkey").hidden ? $("step-up-code") : $("step-up-passkey")).focus();
  return new Promise((resolve, reject) => {
    state.stepUp = { resolve, reject };
  });
}

function cancelStepUp(quiet = false) {
  const pending = state.stepUp;
  state.stepUp = null;
  $("step-up").hidden = true;
  $("step-up-code").value = "";
  if (pending) {
    const error = new Error("The change was cancelled.");
    error.name = "StepUpCancelled";
    error.quiet = quiet;
    pending.reject(error);
  }
}

async function steppedUp(body) {
  const answer = await api("POST", "/api/v1/auth/mfa/step-up", body);
  state.token = answer.access_token;
  const pending = state.stepUp;
  state.stepUp = null;
  $("step-up").hidden = true;
  $("step-up-code").value = "";
  say("Confirmed.");
  if (pending) pending.resolve();
  // A recovery code is spent now: the count shown changes.
  if (body.recovery_code) await refreshFactors();
}

async function stepUpWithPasskey() {
  const options = await api("POST", "/api/v1/auth/mfa/step-up/options");
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  await steppedUp({ passkey: assertionJson(credential) });
}

async function stepUpWithCode(event) {
  event.preventDefault();
  await steppedUp(codeBody($("step-up-code").value));
}

// --- an authenticator app ---
async function startTotp() {
  const enrolment = await withStepUp(() => api("POST", "/api/v1/users/me/mfa/totp"));
  $("totp-qr").replaceChildren(svgNode(enrolment.qr_svg));
  $("totp-secret").textContent = enrolment.secret;
  $("totp-start").hidden = true;
  $("totp-enrol").hidden = false;
  $("totp-code").focus();
  say("Scan the QR code, then type in the app's code.");
}

async function confirmTotp(event) {
  event.preventDefault();
  const { recovery_codes: codes } = await api("POST", "/api/v1/users/me/mfa/totp/confirm", {
    code: $("totp-code").value.replace(/\s+/g, ""),
  });
  $("totp-code").value = "";
  $("totp-enrol").hidden = true;
  $("totp-qr").replaceChildren();
  $("totp-secret").textContent = "";
  $("recovery-codes").replaceChildren(
    ...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }),
  );
  $("recovery").hidden = false;
  say("Authenticator app turned on. Save your recovery codes.");
  await refreshFactors();
}

function recoveryDone() {
  $("recovery").hidden = true;
  $("recovery-codes").replaceChildren();
}

async function signOut() {
  try {
    await api("POST", "/api/v1/auth/logout");
  } finally {
    signedOut();
    say("Signed out.");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (!window.PublicKeyCredential) {
    $("passkey-sign-in").disabled = true;
    $("add-passkey").disabled = true;
    $("mfa-passkey").disabled = true;
    $("step-up-passkey").disabled = true;
    say("This browser does not support passkeys.", true);
  }
  $("password-form").addEventListener("submit", (event) => signInWithPassword(event).catch(fail));
  $("passkey-sign-in").addEventListener("click", () => signInWithPasskey().catch(fail));
  $("add-passkey-form").addEventListener("submit", (event) => addPasskey(event).catch(fail));
  $("sign-out").addEventListener("click", () => signOut().catch(fail));
  $("mfa-passkey").addEventListener("click", () => secondFactorPasskey().catch(fail));
  $("mfa-code-form").addEventListener("submit", (event) => secondFactorCode(event).catch(fail));
  $("mfa-cancel").addEventListener("click", cancelSecondFactor);
  $("step-up-passkey").addEventListener("click", () => stepUpWithPasskey().catch(fail));
  $("step-up-code-form").addEventListener("submit", (event) => stepUpWithCode(event).catch(fail));
  $("step-up-cancel").addEventListener("click", cancelStepUp);
  $("totp-start").addEventListener("click", () => startTotp().catch(fail));
  $("totp-confirm-form").addEventListener("submit", (event) => confirmTotp(event).catch(fail));
  $("recovery-done").addEventListener("click", recoveryDone);
});
