// The account-security page: sign in with a password or a passkey, list, add, rename and
// delete passkeys. Same-origin script only (the page's CSP forbids inline code). The access
// token stays in this page's memory: a reload signs out of the page (the session lives on
// until it is signed out or expires).
"use strict";

const state = { token: null, user: null };
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

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function fail(error) {
  if (error && error.name === "NotAllowedError") say("The passkey request was cancelled or timed out.", true);
  else say(error && error.message ? error.message : String(error), true);
}

// --- signed in / out ---
function signedIn(tokens) {
  state.token = tokens.access_token;
  state.user = tokens.user;
  $("who").textContent = tokens.user.username;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  return refreshPasskeys();
}

function signedOut() {
  state.token = null;
  state.user = null;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("passkeys").replaceChildren();
}

async function refreshPasskeys() {
  const { passkeys } = await api("GET", "/api/v1/users/me/passkeys");
  const list = $("passkeys");
  list.replaceChildren(...passkeys.map(passkeyItem));
  $("no-passkeys").hidden = passkeys.length > 0;
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
    api("DELETE", `/api/v1/users/me/passkeys/${passkey.id}`)
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
  const options = await api("POST", "/api/v1/users/me/passkeys/options");
  const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  const name = $("new-passkey-name").value.trim();
  const body = { response: registrationJson(credential) };
  if (name) body.name = name;
  const passkey = await api("POST", "/api/v1/users/me/passkeys", body);
  $("new-passkey-name").value = "";
  say(`Added passkey ${passkey.name}.`);
  await refreshPasskeys();
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
    say("This browser does not support passkeys.", true);
  }
  $("password-form").addEventListener("submit", (event) => signInWithPassword(event).catch(fail));
  $("passkey-sign-in").addEventListener("click", () => signInWithPasskey().catch(fail));
  $("add-passkey-form").addEventListener("submit", (event) => addPasskey(event).catch(fail));
  $("sign-out").addEventListener("click", () => signOut().catch(fail));
});
