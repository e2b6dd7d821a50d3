//! Sign-in through OpenID Connect and OAuth 2.0 providers, the pure parts: which providers
//! are configured and how (`OAUTH_*`), where an app may be sent back to
//! (`ALLOWED_REDIRECT_URLS`), PKCE (S256), and the checks of an id_token's header and claims.
//! The flows (`service::oauth`) put these together; the signature itself is checked through
//! the edge (WebCrypto in the Worker).
//!
//! ## `ALLOWED_REDIRECT_URLS`
//! A comma-separated list. Each entry is an absolute URL without query, fragment or user
//! information, and `redirect_to` matches it when scheme, port and host are the same and:
//! - the path is the same; or the entry's path ends in `/*` and `redirect_to`'s path starts
//!   with everything before the `*` (`https://app.example/auth/*` allows
//!   `https://app.example/auth/done`, not `https://app.example/other`);
//! - the entry's host may start with `*.`, which stands for exactly one label
//!   (`https://*.example.com/cb` allows `https://a.example.com/cb`, not
//!   `https://example.com/cb` nor `https://a.b.example.com/cb`).
//!
//! `redirect_to` may carry a query (kept, and the code is added to it; it must not name `code`,
//! `error` or `state` itself) but never a fragment
//! or user information, and never a path with `.`/`..` segments or encoded dots or slashes
//! (so what is compared is what the browser will load). `http://` entries are accepted only
//! when `ENVIRONMENT` is `development` or `test`.

use crate::domain::secret::constant_time_eq;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

/// Google's issuer, for the `google` preset.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";
/// GitHub's sites, for the `github` preset.
pub const GITHUB_WEB_URL: &str = "https://github.com";
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// How a provider is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// Any OpenID Connect provider, by issuer (discovery document and JWKS).
    Oidc { issuer: String },
    /// GitHub: OAuth 2.0 plus its REST API (no id_token).
    Github { web_url: String, api_url: String },
}

/// One enabled provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Lower-case name, as in the URL (`/api/v1/auth/oauth/{name}/start`).
    pub name: String,
    pub client_id: String,
    /// A secret: never logged, never shown.
    pub client_secret: String,
    pub kind: ProviderKind,
}

/// The providers and where apps may be sent back to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthSettings {
    pub providers: Vec<Provider>,
    pub redirects: Vec<RedirectPattern>,
}

impl OAuthSettings {
    /// The enabled provider of this name.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.iter().find(|provider| provider.name == name)
    }

    /// Whether an app may be sent to `candidate`.
    pub fn allows_redirect(&self, candidate: &str) -> bool {
        let Some(candidate) = parse_redirect_target(candidate) else {
            return false;
        };
        self.redirects
            .iter()
            .any(|pattern| pattern.matches(&candidate))
    }
}

/// Whether `ENVIRONMENT` lets `http://` issuers and redirect targets through.
pub fn allows_plain_http(environment: &str) -> bool {
    matches!(environment, "development" | "test")
}

/// Read the `OAUTH_*` and `ALLOWED_REDIRECT_URLS` settings through `get`. Every problem is
/// reported (the service then refuses to start: fail closed), not only the first.
pub fn parse_settings(
    get: &dyn Fn(&str) -> Option<String>,
    environment: &str,
) -> Result<OAuthSettings, Vec<String>> {
    let mut errors = Vec::new();
    let setting = |name: &str| get(name).map(|value| value.trim().to_owned());
    let plain_http = allows_plain_http(environment);
    let names = setting("OAUTH_PROVIDERS").unwrap_or_default();
    let mut settings = OAuthSettings::default();
    for raw in names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let name = raw.to_ascii_lowercase();
        let valid_name = name.len() <= 32
            && name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
        if !valid_name {
            errors.push(format!(
                "OAUTH_PROVIDERS: {raw:?} is not a provider name (1 to 32 letters and digits)"
            ));
            continue;
        }
        if settings.provider(&name).is_some() {
            errors.push(format!("OAUTH_PROVIDERS names {name} twice"));
            continue;
        }
        let prefix = format!("OAUTH_{}", name.to_ascii_uppercase());
        let mut required = |suffix: &str| {
            let key = format!("{prefix}_{suffix}");
            match setting(&key) {
                Some(value) if !value.is_empty() => Some(value),
                _ => {
                    errors.push(format!("{key} is required for the provider {name}"));
                    None
                }
            }
        };
        let client_id = required("CLIENT_ID");
        let client_secret = required("CLIENT_SECRET");
        let kind = match name.as_str() {
            "github" => {
                // The base URLs exist for the test stand-in only; production is GitHub.
                let web = setting("OAUTH_GITHUB_WEB_URL").filter(|value| !value.is_empty());
                let api = setting("OAUTH_GITHUB_API_URL").filter(|value| !value.is_empty());
                if (web.is_some() || api.is_some()) && !plain_http {
                    errors.push(
                        "OAUTH_GITHUB_WEB_URL and OAUTH_GITHUB_API_URL are for tests: only \
                         allowed with ENVIRONMENT=development or test"
                            .into(),
                    );
                    None
                } else {
                    Some(ProviderKind::Github {
                        web_url: web.unwrap_or_else(|| GITHUB_WEB_URL.into()),
                        api_url: api.unwrap_or_else(|| GITHUB_API_URL.into()),
                    })
                }
            }
            _ => {
                let key = format!("{prefix}_ISSUER");
                let issuer = match (name.as_str(), setting(&key).filter(|v| !v.is_empty())) {
                    (_, Some(issuer)) => Some(issuer),
                    ("google", None) => Some(GOOGLE_ISSUER.to_owned()),
                    (_, None) => {
                        errors.push(format!("{key} is required for the provider {name}"));
                        None
                    }
                };
                issuer.and_then(|issuer| match check_issuer(&issuer, plain_http) {
                    Ok(()) => Some(ProviderKind::Oidc { issuer }),
                    Err(why) => {
                        errors.push(format!("{key}: {why}"));
                        None
                    }
                })
            }
        };
        if let (Some(client_id), Some(client_secret), Some(kind)) = (client_id, client_secret, kind)
        {
            settings.providers.push(Provider {
                name,
                client_id,
                client_secret,
                kind,
            });
        }
    }
    let redirects = setting("ALLOWED_REDIRECT_URLS").unwrap_or_default();
    for entry in redirects
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        match RedirectPattern::parse(entry, plain_http) {
            Ok(pattern) => settings.redirects.push(pattern),
            Err(why) => errors.push(format!("ALLOWED_REDIRECT_URLS: {entry:?} {why}")),
        }
    }
    let names_any = names.split(',').any(|name| !name.trim().is_empty());
    if names_any && settings.redirects.is_empty() {
        errors
            .push("ALLOWED_REDIRECT_URLS is required when OAUTH_PROVIDERS names a provider".into());
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

/// An issuer is an `https://` URL (or `http://` in development and test) without query or
/// fragment: discovery appends `/.well-known/openid-configuration` to it.
fn check_issuer(issuer: &str, plain_http: bool) -> Result<(), &'static str> {
    let url = Url::parse(issuer).map_err(|_| "is not a URL")?;
    match url.scheme() {
        "https" => {}
        "http" if plain_http => {}
        "http" => return Err("must be https:// (http:// only in development and test)"),
        _ => return Err("must be an https:// URL"),
    }
    if url.host_str().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
    {
        return Err("must be a plain URL without query, fragment or user information");
    }
    Ok(())
}

/// One entry of `ALLOWED_REDIRECT_URLS` (syntax in the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectPattern {
    scheme: String,
    /// Without the `*.` of a wildcard entry.
    host: String,
    wildcard_host: bool,
    port: Option<u16>,
    /// Without the trailing `*` of a prefix entry.
    path: String,
    path_prefix: bool,
}

impl RedirectPattern {
    /// Parse an entry; `Err` says why it is refused.
    pub fn parse(entry: &str, plain_http: bool) -> Result<Self, &'static str> {
        let (wildcard_host, text) = match entry.split_once("://*.") {
            Some((scheme, rest)) => (true, format!("{scheme}://{rest}")),
            None => (false, entry.to_owned()),
        };
        let path_prefix = text.ends_with("/*");
        let text = if path_prefix {
            text[..text.len() - 1].to_owned()
        } else {
            text
        };
        if text.contains('*') {
            return Err("has a * other than a leading host label or a trailing path segment");
        }
        let url = Url::parse(&text).map_err(|_| "is not an absolute URL")?;
        match url.scheme() {
            "https" => {}
            "http" if plain_http => {}
            "http" => return Err("must be https:// (http:// only in development and test)"),
            _ => return Err("must be an https:// URL"),
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("must not have a query, fragment or user information");
        }
        let host = url.host_str().ok_or("has no host")?.to_owned();
        if wildcard_host && !host.contains('.') {
            return Err("may use *. only in front of a domain with a dot");
        }
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host,
            wildcard_host,
            port: url.port_or_known_default(),
            path: url.path().to_owned(),
            path_prefix,
        })
    }

    fn matches(&self, candidate: &Url) -> bool {
        if candidate.scheme() != self.scheme || candidate.port_or_known_default() != self.port {
            return false;
        }
        let Some(host) = candidate.host_str() else {
            return false;
        };
        let host_matches = if self.wildcard_host {
            host.split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == self.host)
        } else {
            host == self.host
        };
        let path = candidate.path();
        let path_matches = if self.path_prefix {
            path.starts_with(&self.path)
        } else {
            path == self.path
        };
        host_matches && path_matches
    }
}

/// `redirect_to` as the browser will load it, or `None` when it is refused whatever the
/// list says: not absolute, user information, a fragment, or a path the parser would
/// rewrite (dot segments, encoded dots or slashes, backslashes).
fn parse_redirect_target(candidate: &str) -> Option<Url> {
    if candidate.len() > 2048 || candidate.contains('\\') {
        return None;
    }
    let url = Url::parse(candidate).ok()?;
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return None;
    }
    // The parser resolves `..`: insist that the path was already what it became.
    let raw_path = candidate
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .map(|path| path.split(['?', '#']).next().unwrap_or(""))
        .unwrap_or("/");
    let lowered = raw_path.to_ascii_lowercase();
    if lowered.contains("%2e") || lowered.contains("%2f") || lowered.contains("%5c") {
        return None;
    }
    if raw_path != url.path() && !(raw_path.is_empty() && url.path() == "/") {
        return None;
    }
    // The names the callback adds: one already there could pass someone else's code off
    // as the one this sign-in returns.
    if url
        .query_pairs()
        .any(|(name, _)| RESERVED_QUERY_NAMES.contains(&name.as_ref()))
    {
        return None;
    }
    Some(url)
}

/// The query names the callback adds to `redirect_to`.
const RESERVED_QUERY_NAMES: [&str; 3] = ["code", "error", "state"];

/// `redirect_to` with `name=value` added to its query (values are form-encoded).
pub fn with_query_param(redirect_to: &str, pairs: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(redirect_to).ok()?;
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in pairs {
            query.append_pair(name, value);
        }
    }
    Some(url.into())
}

/// The S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is a PKCE code verifier: 43 to 128 unreserved characters.
pub fn is_pkce_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// Whether `challenge` can be an S256 challenge: 43 base64url characters (a SHA-256).
pub fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Whether `verifier` answers `challenge` (compared in constant time).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    is_pkce_verifier(verifier)
        && constant_time_eq(pkce_challenge(verifier).as_bytes(), challenge.as_bytes())
}

/// Why an id_token was refused. The flows log the variant, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenError {
    Malformed,
    /// An `alg` other than RS256 or ES256 (`none` and HMAC included).
    Algorithm,
    /// No key of the provider's JWKS has that `kid` and algorithm.
    UnknownKey,
    Signature,
    Issuer,
    Audience,
    Expired,
    /// Issued in the future, or too long ago.
    IssuedAt,
    Nonce,
    /// No `sub`.
    Subject,
}

impl IdTokenError {
    /// For the log and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            IdTokenError::Malformed => "malformed",
            IdTokenError::Algorithm => "algorithm",
            IdTokenError::UnknownKey => "unknown_key",
            IdTokenError::Signature => "signature",
            IdTokenError::Issuer => "issuer",
            IdTokenError::Audience => "audience",
            IdTokenError::Expired => "expired",
            IdTokenError::IssuedAt => "issued_at",
            IdTokenError::Nonce => "nonce",
            IdTokenError::Subject => "subject",
        }
    }
}

/// An id_token taken apart, its signature not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitToken {
    /// `RS256` or `ES256`.
    pub alg: String,
    pub kid: Option<String>,
    /// `header.payload`, what the signature signs.
    pub signing_input: String,
    pub signature: Vec<u8>,
    pub claims: Value,
}

/// Take a compact JWS apart. Only RS256 and ES256 pass: the algorithm is pinned by the
/// key's type afterwards as well, so a token cannot choose a weaker check.
pub fn split_id_token(token: &str) -> Result<SplitToken, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(IdTokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| IdTokenError::Malformed)
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| IdTokenError::Malformed)?;
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(IdTokenError::Malformed)?;
    if alg != "RS256" && alg != "ES256" {
        return Err(IdTokenError::Algorithm);
    }
    let claims: Value =
        serde_json::from_slice(&decode(payload)?).map_err(|_| IdTokenError::Malformed)?;
    if !claims.is_object() {
        return Err(IdTokenError::Malformed);
    }
    Ok(SplitToken {
        alg: alg.to_owned(),
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        signing_input: token[..token.len() - signature.len() - 1].to_owned(),
        signature: decode(signature)?,
        claims,
    })
}

/// What the claims of an id_token must say.
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: i64,
    pub leeway_seconds: i64,
}

/// The account a provider vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderAccount {
    pub subject: String,
    pub email: Option<String>,
    /// `Some(true)` only when the provider asserts it; `None` when it says nothing.
    pub email_verified: Option<bool>,
    /// A name to derive the username from (`preferred_username`, GitHub's `login`, ...).
    pub name_hint: Option<String>,
}

/// How long ago an id_token may have been issued: it is fetched from the token endpoint
/// moments before, so a long-lived one is a replay.
const MAX_ID_TOKEN_AGE_SECONDS: i64 = 600;

/// Check `iss`, `aud` (and `azp` when there are several audiences), `exp`, `iat` and
/// `nonce` (OpenID Connect Core §3.1.3.7).
pub fn check_claims(
    claims: &Value,
    expected: &Expected<'_>,
) -> Result<ProviderAccount, IdTokenError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expected.issuer) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    if audiences.len() > 1 && text("azp") != Some(expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    match number("exp") {
        Some(exp) if exp + expected.leeway_seconds > expected.now => {}
        _ => return Err(IdTokenError::Expired),
    }
    match number("iat") {
        Some(iat)
            if iat <= expected.now + expected.leeway_seconds
                && iat >= expected.now - MAX_ID_TOKEN_AGE_SECONDS => {}
        _ => return Err(IdTokenError::IssuedAt),
    }
    match text("nonce") {
        Some(nonce) if constant_time_eq(nonce.as_bytes(), expected.nonce.as_bytes()) => {}
        _ => return Err(IdTokenError::Nonce),
    }
    let subject = text("sub")
        .filter(|sub| !sub.is_empty() && sub.len() <= 255)
        .ok_or(IdTokenError::Subject)?;
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(flag)) => Some(*flag),
        // Some providers send the flag as a string.
        Some(Value::String(flag)) if flag == "true" => Some(true),
        Some(Value::String(flag)) if flag == "false" => Some(false),
        _ => None,
    };
    Ok(ProviderAccount {
        subject: subject.to_owned(),
        email: text("email").map(str::to_owned),
        email_verified,
        name_hint: text("preferred_username")
            .or(text("nickname"))
            .or(text("name"))
            .map(str::to_owned),
    })
}

/// A username base from a provider's profile: lower-case ASCII letters, digits and
/// underscores, 3 to 36 characters (room for a suffix that makes it unique), from the first
/// hint that gives one, else `user`.
pub fn username_base(hints: &[Option<&str>]) -> String {
    for hint in hints.iter().flatten() {
        let local = hint.split('@').next().unwrap_or(hint);
        let mut base: String = local
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        base = base.trim_matches('_').to_owned();
        while base.contains("__") {
            base = base.replace("__", "_");
        }
        base.truncate(36);
        if base.len() >= 3 {
            return base;
        }
    }
    "user".into()
}

/// The scopes asked of an OpenID Connect provider: the subject, the email and whether it is
/// verified, and a name to derive the username from.
pub const OIDC_SCOPE: &str = "openid email profile";
/// The scopes asked of GitHub: the profile, and the addresses with their verification.
pub const GITHUB_SCOPE: &str = "read:user user:email";

/// Where a provider is asked to authorize, and where its code is exchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: String,
    pub token: String,
    /// The JWKS document (`None` for GitHub, which issues no id_token).
    pub jwks: Option<String>,
    /// Whether the client authenticates to the token endpoint with HTTP Basic
    /// (`client_secret_basic`, the default of OpenID Connect Discovery) rather than with the
    /// form (`client_secret_post`).
    basic_auth: bool,
}

/// The discovery document of an issuer (OpenID Connect Discovery §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// GitHub's fixed endpoints under its web URL.
pub fn github_endpoints(web_url: &str) -> Endpoints {
    let web = web_url.trim_end_matches('/');
    Endpoints {
        authorization: format!("{web}/login/oauth/authorize"),
        token: format!("{web}/login/oauth/access_token"),
        jwks: None,
        basic_auth: false,
    }
}

/// An endpoint the discovery document names: https (http only in development and test),
/// without user information or fragment.
fn endpoint(document: &Value, name: &str, plain_http: bool) -> Result<String, &'static str> {
    let text = document
        .get(name)
        .and_then(Value::as_str)
        .ok_or("lacks an endpoint")?;
    let url = Url::parse(text).map_err(|_| "names an endpoint that is not a URL")?;
    let scheme_ok = url.scheme() == "https" || (plain_http && url.scheme() == "http");
    if !scheme_ok || !url.username().is_empty() || url.fragment().is_some() {
        return Err("names an endpoint that is not a plain https:// URL");
    }
    Ok(text.to_owned())
}

/// Read a discovery document. Its `issuer` must be exactly the configured one (Discovery
/// §4.3: otherwise another issuer's tokens could be passed off as this one's), and it must
/// offer S256 when it lists PKCE methods, and a client-secret method this service speaks.
pub fn parse_discovery(
    body: &str,
    issuer: &str,
    plain_http: bool,
) -> Result<Endpoints, &'static str> {
    let document: Value = serde_json::from_str(body).map_err(|_| "is not JSON")?;
    if document.get("issuer").and_then(Value::as_str) != Some(issuer) {
        return Err("names another issuer");
    }
    let listed = |name: &str| -> Option<Vec<String>> {
        document.get(name).and_then(Value::as_array).map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
    };
    if listed("code_challenge_methods_supported")
        .is_some_and(|methods| !methods.iter().any(|method| method == "S256"))
    {
        return Err("does not support PKCE with S256");
    }
    let basic_auth = match listed("token_endpoint_auth_methods_supported") {
        None => true,
        Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => true,
        Some(methods) if methods.iter().any(|m| m == "client_secret_post") => false,
        Some(_) => return Err("supports neither client_secret_basic nor client_secret_post"),
    };
    Ok(Endpoints {
        authorization: endpoint(&document, "authorization_endpoint", plain_http)?,
        token: endpoint(&document, "token_endpoint", plain_http)?,
        jwks: Some(endpoint(&document, "jwks_uri", plain_http)?),
        basic_auth,
    })
}

/// What the authorization request carries besides the client.
pub struct Authorization<'a> {
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub state: &'a str,
    /// OpenID Connect only; GitHub has no id_token to carry it.
    pub nonce: Option<&'a str>,
    /// The S256 challenge of the service's own verifier.
    pub challenge: &'a str,
}

/// The provider's authorization URL for this sign-in (OpenID Connect Core §3.1.2.1,
/// RFC 7636 §4.3), keeping any query the endpoint already has.
pub fn authorization_url(
    endpoints: &Endpoints,
    client_id: &str,
    request: &Authorization<'_>,
) -> Option<String> {
    let mut url = Url::parse(&endpoints.authorization).ok()?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("scope", request.scope)
            .append_pair("state", request.state)
            .append_pair("code_challenge", request.challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(nonce) = request.nonce {
            query.append_pair("nonce", nonce);
        }
    }
    Some(url.into())
}

/// The token request (RFC 6749 §4.1.3 with the PKCE verifier): its form, and the
/// `Authorization` header when the client authenticates with HTTP Basic. Both hold the
/// client secret: they go to the provider and nowhere else.
pub fn token_request(
    endpoints: &Endpoints,
    client_id: &str,
    client_secret: &str,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> (String, Option<String>) {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", verifier);
    if endpoints.basic_auth {
        // RFC 6749 §2.3.1: each half form-encoded before joining.
        let encode =
            |text: &str| -> String { form_urlencoded::byte_serialize(text.as_bytes()).collect() };
        let pair: String = [encode(client_id), encode(client_secret)].join(":");
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        );
        (form.finish(), Some(header))
    } else {
        form.append_pair("client_id", client_id)
            .append_pair("client_secret", client_secret);
        (form.finish(), None)
    }
}

/// The key of a provider's set that checks this token: the one with its `kid` and of its
/// algorithm, or, when the token names no key, the set's only key of that algorithm.
pub fn select_key<'a>(
    keys: &'a [(Option<String>, crate::domain::keys::PublicKey)],
    kid: Option<&str>,
    alg: &str,
) -> Option<&'a crate::domain::keys::PublicKey> {
    let mut of_alg = keys
        .iter()
        .filter(|(_, key)| key.algorithm().as_str() == alg);
    match kid {
        Some(kid) => of_alg
            .find(|(candidate, _)| candidate.as_deref() == Some(kid))
            .map(|(_, key)| key),
        None => match (of_alg.next(), of_alg.next()) {
            (Some((_, key)), None) => Some(key),
            _ => None,
        },
    }
}

/// The account GitHub vouches for, from `/user` and `/user/emails`: its numeric id (a login
/// can be renamed and taken by someone else), and the primary address only when GitHub
/// says it is verified; otherwise no address at all.
pub fn github_account(user: &Value, emails: &Value) -> Option<ProviderAccount> {
    let subject = user.get("id").and_then(Value::as_u64)?.to_string();
    let primary = emails.as_array().and_then(|emails| {
        emails.iter().find(|email| {
            email.get("primary").and_then(Value::as_bool) == Some(true)
                && email.get("verified").and_then(Value::as_bool) == Some(true)
        })
    });
    let email = primary
        .and_then(|email| email.get("email"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(ProviderAccount {
        subject,
        email_verified: email.as_ref().map(|_| true),
        email,
        name_hint: user.get("login").and_then(Value::as_str).map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)], environment: &str) -> Result<OAuthSettings, Vec<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse_settings(&|name| map.get(name).cloned(), environment)
    }

    #[test]
    fn presets_and_generic_providers_come_from_the_settings() {
        let parsed = settings(
            &[
                ("OAUTH_PROVIDERS", "Google, github,acme"),
                ("OAUTH_GOOGLE_CLIENT_ID", "g"),
                ("OAUTH_GOOGLE_CLIENT_SECRET", "gs"),
                ("OAUTH_GITHUB_CLIENT_ID", "h"),
                ("OAUTH_GITHUB_CLIENT_SECRET", "hs"),
                ("OAUTH_ACME_CLIENT_ID", "a"),
                ("OAUTH_ACME_CLIENT_SECRET", "as"),
                ("OAUTH_ACME_ISSUER", "https://id.acme.example"),
                ("ALLOWED_REDIRECT_URLS", "https://app.example/done"),
            ],
            "production",
        )
        .unwrap();
        assert_eq!(
            parsed.provider("google").unwrap().kind,
            ProviderKind::Oidc {
                issuer: GOOGLE_ISSUER.into()
            }
        );
        assert!(matches!(
            &parsed.provider("github").unwrap().kind,
            ProviderKind::Github { api_url, .. } if api_url == GITHUB_API_URL
        ));
        assert_eq!(parsed.provider("acme").unwrap().client_id, "a");
        assert!(parsed.provider("other").is_none());
    }

    #[test]
    fn no_providers_is_a_valid_configuration() {
        assert_eq!(settings(&[], "production"), Ok(OAuthSettings::default()));
    }

    #[test]
    fn a_misconfigured_provider_fails_closed_with_every_problem_named() {
        let errors = settings(
            &[
                ("OAUTH_PROVIDERS", "acme,bad-name,github"),
                ("OAUTH_ACME_CLIENT_ID", "a"),
                ("OAUTH_ACME_ISSUER", "http://id.acme.example"),
                ("OAUTH_GITHUB_CLIENT_ID", "h"),
                ("OAUTH_GITHUB_CLIENT_SECRET", "hs"),
                ("OAUTH_GITHUB_API_URL", "http://127.0.0.1:9999"),
            ],
            "production",
        )
        .unwrap_err();
        let all = errors.join("\n");
        assert!(
            all.contains("OAUTH_ACME_CLIENT_SECRET is required"),
            "{all}"
        );
        assert!(all.contains("OAUTH_ACME_ISSUER: must be https://"), "{all}");
        assert!(all.contains("\"bad-name\" is not a provider name"), "{all}");
        assert!(all.contains("OAUTH_GITHUB_API_URL are for tests"), "{all}");
        assert!(all.contains("ALLOWED_REDIRECT_URLS is required"), "{all}");
    }

    #[test]
    fn http_issuers_and_base_urls_are_accepted_only_in_development_and_test() {
        let pairs = [
            ("OAUTH_PROVIDERS", "acme"),
            ("OAUTH_ACME_CLIENT_ID", "a"),
            ("OAUTH_ACME_CLIENT_SECRET", "s"),
            ("OAUTH_ACME_ISSUER", "http://127.0.0.1:4000"),
            ("ALLOWED_REDIRECT_URLS", "http://localhost:3000/cb"),
        ];
        assert!(settings(&pairs, "test").is_ok());
        assert!(settings(&pairs, "development").is_ok());
        assert!(settings(&pairs, "production").is_err());
        assert!(settings(&pairs, "staging").is_err());
    }

    fn allowed(list: &str, candidate: &str) -> bool {
        let settings = settings(&[("ALLOWED_REDIRECT_URLS", list)], "production").unwrap();
        settings.allows_redirect(candidate)
    }

    #[test]
    fn exact_redirect_urls_match_only_themselves() {
        let list = "https://app.example/auth/done";
        assert!(allowed(list, "https://app.example/auth/done"));
        assert!(allowed(list, "https://app.example/auth/done?next=%2Fhome"));
        assert!(allowed(list, "https://APP.example:443/auth/done"));
        for refused in [
            "https://app.example/auth/done/",
            "https://app.example/auth/don",
            "http://app.example/auth/done",
            "https://app.example:8443/auth/done",
            "https://app.example.evil/auth/done",
            "https://evil.example/auth/done",
            "https://user@app.example/auth/done",
            "https://app.example/auth/done#x",
            "https://app.example/x/../auth/done",
            "https://app.example/auth/%2e%2e/done",
            "https://app.example\\@evil.example/auth/done",
            "//app.example/auth/done",
            "/auth/done",
            "javascript:alert(1)",
            "",
            // The names the callback adds: another sign-in's code must not ride along.
            "https://app.example/auth/done?code=planted",
            "https://app.example/auth/done?next=x&error=access_denied",
            "https://app.example/auth/done?state=x",
        ] {
            assert!(!allowed(list, refused), "{refused}");
        }
    }

    #[test]
    fn a_wildcard_host_label_matches_exactly_one_label() {
        let list = "https://*.app.example/cb";
        assert!(allowed(list, "https://tenant.app.example/cb"));
        assert!(!allowed(list, "https://app.example/cb"));
        assert!(!allowed(list, "https://a.b.app.example/cb"));
        assert!(!allowed(list, "https://tenant.app.example.evil/cb"));
        assert!(!allowed(list, "https://evilapp.example/cb"));
    }

    #[test]
    fn a_trailing_path_star_matches_paths_below_it() {
        let list = "https://app.example/auth/*";
        assert!(allowed(list, "https://app.example/auth/done"));
        assert!(allowed(list, "https://app.example/auth/a/b"));
        assert!(!allowed(list, "https://app.example/authx"));
        assert!(!allowed(list, "https://app.example/other"));
        assert!(!allowed(list, "https://app.example/auth/../other"));
    }

    #[test]
    fn malformed_redirect_entries_are_refused() {
        for entry in [
            "app.example/cb",
            "https://app.example/cb?x=1",
            "https://a*b.example/cb",
            "https://app.example/*/cb",
            "ftp://app.example/cb",
            "http://app.example/cb",
            "https://*.com/cb",
        ] {
            assert!(
                settings(&[("ALLOWED_REDIRECT_URLS", entry)], "production").is_err(),
                "{entry}"
            );
        }
    }

    #[test]
    fn the_code_is_added_to_the_redirect_query() {
        assert_eq!(
            with_query_param("https://app.example/cb?next=x", &[("code", "a b")]).unwrap(),
            "https://app.example/cb?next=x&code=a+b"
        );
    }

    #[test]
    fn pkce_s256_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(
            pkce_challenge(verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_verifier(verifier));
        assert!(is_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(pkce_matches(
            verifier,
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!is_pkce_verifier("short"));
        assert!(!is_s256_challenge("not a challenge"));
    }

    fn claims() -> Value {
        json!({
            "iss": "https://id.example", "aud": "client", "sub": "42",
            "exp": 1_000 + 300, "iat": 1_000, "nonce": "n-1",
            "email": "Ann@Example.com", "email_verified": true, "preferred_username": "ann",
        })
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://id.example",
            client_id: "client",
            nonce: "n-1",
            now: 1_010,
            leeway_seconds: 30,
        }
    }

    #[test]
    fn good_claims_give_the_providers_account() {
        let account = check_claims(&claims(), &expected()).unwrap();
        assert_eq!(account.subject, "42");
        assert_eq!(account.email_verified, Some(true));
        assert_eq!(account.name_hint.as_deref(), Some("ann"));
    }

    #[test]
    fn each_wrong_claim_is_refused_for_its_reason() {
        let cases: [(&str, Value, IdTokenError); 8] = [
            ("iss", json!("https://other.example"), IdTokenError::Issuer),
            ("aud", json!("other-client"), IdTokenError::Audience),
            ("aud", json!(["client", "other"]), IdTokenError::Audience),
            ("exp", json!(900), IdTokenError::Expired),
            ("iat", json!(5_000), IdTokenError::IssuedAt),
            ("iat", json!(1), IdTokenError::IssuedAt),
            ("nonce", json!("n-2"), IdTokenError::Nonce),
            ("sub", json!(""), IdTokenError::Subject),
        ];
        for (claim, value, error) in cases {
            let mut claims = claims();
            claims[claim] = value;
            assert_eq!(check_claims(&claims, &expected()), Err(error), "{claim}");
        }
        let mut no_nonce = claims();
        no_nonce.as_object_mut().unwrap().remove("nonce");
        assert_eq!(
            check_claims(&no_nonce, &expected()),
            Err(IdTokenError::Nonce)
        );
        let mut azp = claims();
        azp["aud"] = json!(["client", "other"]);
        azp["azp"] = json!("client");
        assert!(check_claims(&azp, &expected()).is_ok());
    }

    #[test]
    fn an_absent_verification_flag_is_none_not_false() {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("email_verified");
        assert_eq!(
            check_claims(&claims, &expected()).unwrap().email_verified,
            None
        );
    }

    #[test]
    fn only_rs256_and_es256_tokens_are_taken_apart() {
        let part = |value: Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let token = |alg: &str| {
            format!(
                "{}.{}.{}",
                part(json!({"alg": alg, "kid": "k1"})),
                part(claims()),
                URL_SAFE_NO_PAD.encode(b"sig")
            )
        };
        let split = split_id_token(&token("RS256")).unwrap();
        assert_eq!(split.kid.as_deref(), Some("k1"));
        assert_eq!(split.signature, b"sig");
        assert_eq!(split.claims["sub"], "42");
        assert!(token("RS256").starts_with(&split.signing_input));
        for alg in ["none", "HS256", "EdDSA"] {
            assert_eq!(split_id_token(&token(alg)), Err(IdTokenError::Algorithm));
        }
        assert_eq!(split_id_token("a.b"), Err(IdTokenError::Malformed));
        assert_eq!(split_id_token("a.b.c.d"), Err(IdTokenError::Malformed));
    }

    #[test]
    fn usernames_are_derived_from_the_profile() {
        assert_eq!(
            username_base(&[Some("Ann-Marie O'Neil")]),
            "ann_marie_o_neil"
        );
        assert_eq!(username_base(&[None, Some("bob@example.com")]), "bob");
        assert_eq!(username_base(&[Some("é"), Some("x")]), "user");
        assert_eq!(username_base(&[Some(&"a".repeat(60))]).len(), 36);
    }

    fn discovery(extra: Value) -> String {
        let mut document = json!({
            "issuer": "https://id.example",
            "authorization_endpoint": "https://id.example/auth",
            "token_endpoint": "https://id.example/token",
            "jwks_uri": "https://id.example/jwks",
        });
        for (name, value) in extra.as_object().unwrap() {
            document[name] = value.clone();
        }
        document.to_string()
    }

    #[test]
    fn a_discovery_document_must_be_the_issuers_own_and_speak_s256() {
        let parsed = parse_discovery(&discovery(json!({})), "https://id.example", false).unwrap();
        assert_eq!(parsed.token, "https://id.example/token");
        assert!(parsed.basic_auth, "client_secret_basic is the default");
        let post = json!({ "token_endpoint_auth_methods_supported": ["client_secret_post"] });
        assert!(
            !parse_discovery(&discovery(post), "https://id.example", false)
                .unwrap()
                .basic_auth
        );
        for bad in [
            json!({ "issuer": "https://id.example/" }),
            json!({ "issuer": "https://evil.example" }),
            json!({ "code_challenge_methods_supported": ["plain"] }),
            json!({ "token_endpoint_auth_methods_supported": ["private_key_jwt"] }),
            json!({ "token_endpoint": "http://id.example/token" }),
            json!({ "jwks_uri": "javascript:alert(1)" }),
            json!({ "jwks_uri": null }),
        ] {
            assert!(
                parse_discovery(&discovery(bad.clone()), "https://id.example", false).is_err(),
                "{bad}"
            );
        }
        let plain = json!({ "token_endpoint": "http://id.example/token" });
        assert!(parse_discovery(&discovery(plain), "https://id.example", true).is_ok());
        assert_eq!(
            discovery_url("https://id.example/tenant/"),
            "https://id.example/tenant/.well-known/openid-configuration"
        );
    }

    #[test]
    fn the_client_secret_goes_in_basic_form_encoded_or_in_the_form() {
        let basic = parse_discovery(&discovery(json!({})), "https://id.example", false).unwrap();
        let (form, header) = token_request(&basic, "a:b", "s&c", "code", "https://cb", "v");
        assert_eq!(
            header.unwrap(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("a%3Ab:s%26c")
            )
        );
        assert!(!form.contains("client_secret"));
        let (form, header) = token_request(
            &github_endpoints("https://github.com"),
            "a",
            "s",
            "c",
            "https://cb",
            "v",
        );
        assert!(header.is_none());
        assert_eq!(
            form,
            "grant_type=authorization_code&code=c&redirect_uri=https%3A%2F%2Fcb&code_verifier=v&client_id=a&client_secret=s"
        );
    }

    #[test]
    fn a_provider_jwks_keeps_only_its_rs256_and_es256_signing_keys() {
        let fixtures: Value =
            serde_json::from_str(include_str!("../../tests/fixtures/test-keys.json")).unwrap();
        let key = |name: &str, kid: &str| {
            let mut jwk = fixtures[name]["public_jwk"].clone();
            jwk["kid"] = json!(kid);
            jwk
        };
        let mut encryption = key("rs256_other", "enc");
        encryption["use"] = json!("enc");
        let document = json!({ "keys": [
            key("ed25519", "ed"), key("p384", "p384"), key("rsa1024", "weak"), encryption,
            fixtures["es256"]["private_jwk"].clone(), "not a key", { "kty": "oct", "k": "AA" },
            key("es256", "ec"), key("rs256", "rsa"), fixtures["es256_other"]["public_jwk"].clone(),
        ]});
        let keys = crate::domain::keys::provider_signing_keys(&document);
        let kids: Vec<_> = keys.iter().map(|(kid, _)| kid.as_deref()).collect();
        assert_eq!(kids, [Some("ec"), Some("rsa"), None]);
        assert!(select_key(&keys, Some("ec"), "ES256").is_some());
        assert!(
            select_key(&keys, Some("ec"), "RS256").is_none(),
            "the key's algorithm"
        );
        assert!(
            select_key(&keys, None, "RS256").is_some(),
            "the only RS256 key"
        );
        assert!(
            select_key(&keys, None, "ES256").is_none(),
            "two ES256 keys: ambiguous"
        );
        assert!(crate::domain::keys::provider_signing_keys(&json!({ "keys": 1 })).is_empty());
    }

    #[test]
    fn githubs_account_is_its_numeric_id_with_only_a_verified_primary_address() {
        let user = json!({ "id": 7, "login": "octo" });
        let emails = json!([{ "email": "o@example.com", "primary": true, "verified": true }]);
        let account = github_account(&user, &emails).unwrap();
        assert_eq!(
            (account.subject.as_str(), account.email_verified),
            ("7", Some(true))
        );
        let unverified = json!([{ "email": "o@example.com", "primary": true, "verified": false }]);
        assert_eq!(github_account(&user, &unverified).unwrap().email, None);
        assert!(github_account(&json!({ "id": "7" }), &emails).is_none());
    }
}
