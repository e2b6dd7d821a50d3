//! The one error type of the service and its problem-details shape (RFC 9457).
//!
//! Handlers, the store and the domain all end in [`ApiError`]; exactly one function in
//! `http::response` turns it into a `worker::Response`. This module knows nothing of `worker`,
//! so the mapping from error to status, code and body is unit-tested natively.

use serde::Serialize;
use std::fmt;
use utoipa::ToSchema;

/// A field-level validation failure, reported in the `errors` member of a 422 body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way a request can fail. What a client sees comes from [`ApiError::detail`]; an
/// internal cause (a dependency's own error text) travels inside the error, is logged once
/// by the edge with the request id ([`ApiError::internal_cause`]) and never reaches the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the body is not JSON, or the request is otherwise unreadable.
    MalformedRequest(String),
    /// 400: a JSON object names this member twice (RFC 7493 §2.3); refused rather than
    /// resolved, so nothing in front of the service can read another value than it does.
    DuplicateMember(String),
    /// 400: a provider sign-in's state is unknown, spent, expired, another provider's, or
    /// not this browser's (one answer for all).
    InvalidState,
    /// 400: a one-time sign-in code is unknown, spent or expired, or its PKCE verifier is
    /// missing or wrong (the code is spent all the same).
    InvalidGrant,
    /// 400: the Host header names no trusted host.
    UntrustedHost,
    /// 401: missing, malformed, expired, forged or revoked credentials.
    Unauthorized(String),
    /// 403: authenticated, but not allowed.
    Forbidden(String),
    /// 403: the operation needs a recent sign-in: send the password (see `REAUTH_SECONDS`).
    ReauthenticationRequired,
    /// 403: the account has a second factor and this operation needs a session that proved
    /// it within `STEP_UP_SECONDS`: `POST /api/v1/auth/mfa/step-up` first.
    StepUpRequired,
    /// 404: no such resource (or route).
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the username belongs to another account.
    UsernameTaken,
    /// 409: the email address belongs to another account.
    EmailTaken,
    /// 409: the provider account is linked to another account, or this account already
    /// has an identity of that provider.
    IdentityTaken,
    /// 409: the provider's account would be linked to an account whose email is not
    /// verified; the app should have the user sign in and link from the account.
    LinkRequired,
    /// 409: unlinking would leave the account no way to sign in.
    LastSignInMethod,
    /// 409: the account already has an active TOTP factor (remove it first).
    MfaAlreadyEnabled,
    /// 409: the passkey is registered already (to this or another account).
    PasskeyTaken,
    /// 400: a passkey registration's response did not verify (or answered no challenge
    /// the service issued to this account, or one spent or expired). `code` names the
    /// failed check for the log only.
    InvalidPasskey(&'static str),
    /// 409: an administrator may not do this to their own account (`detail` says what).
    SelfActionRefused(String),
    /// 409: the change would leave no active holder of `admin`.
    LastAdmin,
    /// 413: the body exceeds the configured limit (bytes).
    PayloadTooLarge(usize),
    /// 415: a JSON route got another content type.
    UnsupportedMediaType,
    /// 422: the JSON is well-formed but its fields are not acceptable.
    Validation(Vec<FieldError>),
    /// 429: rate limited; the value is the number of seconds to wait.
    RateLimited(u64),
    /// 429: too many failed logins for this identifier; the value is the number of seconds
    /// to wait. The body never depends on the password that was sent.
    LoginLocked(u64),
    /// 431: the request headers exceed the configured limit (bytes).
    HeadersTooLarge(usize),
    /// 503: a dependency (D1, KV, a Durable Object) did not answer. `what` is named to the
    /// client; `cause` is the dependency's own error text, for the log only.
    Unavailable { what: &'static str, cause: String },
    /// 500: the service itself is misconfigured (missing or malformed secret). Fails closed.
    Misconfigured,
    /// 500: a bug or an unexpected answer from the runtime. `context` says where, `cause` what
    /// happened; both are logged by the edge and never sent.
    Internal {
        context: &'static str,
        cause: String,
    },
}

/// The JSON body of every error response (RFC 9457 problem details).
#[derive(Debug, Serialize, PartialEq, Eq, ToSchema)]
#[schema(example = json!({
    "type": "urn:edge-auth:problem:validation_failed",
    "title": "Unprocessable Content",
    "status": 422,
    "detail": "password: must be 8 to 128 characters long",
    "request_id": "9b2f6a47-3c1e-4d8a-b5f0-2e7c9d1a4b36",
    "errors": [{"field": "password", "message": "must be 8 to 128 characters long"}]
}))]
pub struct ProblemDetails {
    /// `urn:edge-auth:problem:<code>`; clients may branch on the code.
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// Also in the `x-request-id` header and the service's log line.
    pub request_id: String,
    /// Every field that failed, on 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl ApiError {
    /// A dependency that did not answer: `what` for the client, `cause` for the log.
    pub fn unavailable(what: &'static str, cause: impl fmt::Display) -> Self {
        ApiError::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }

    /// A failure that is the service's own: `context` says where it happened.
    pub fn internal(context: &'static str, cause: impl fmt::Debug) -> Self {
        ApiError::Internal {
            context,
            cause: format!("{cause:?}"),
        }
    }

    /// The internal cause the edge logs (never sent): what failed and its own error text.
    pub fn internal_cause(&self) -> Option<(&'static str, &str)> {
        match self {
            ApiError::Unavailable { what, cause } => Some((what, cause)),
            ApiError::Internal { context, cause } => Some((context, cause)),
            _ => None,
        }
    }

    /// Shorthand for a 422 with one field error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError::new(field, message)])
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::MalformedRequest(_)
            | ApiError::DuplicateMember(_)
            | ApiError::InvalidState
            | ApiError::InvalidGrant
            | ApiError::InvalidPasskey(_)
            | ApiError::UntrustedHost => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_)
            | ApiError::ReauthenticationRequired
            | ApiError::StepUpRequired => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::UsernameTaken
            | ApiError::EmailTaken
            | ApiError::IdentityTaken
            | ApiError::LinkRequired
            | ApiError::LastSignInMethod
            | ApiError::MfaAlreadyEnabled
            | ApiError::PasskeyTaken
            | ApiError::SelfActionRefused(_)
            | ApiError::LastAdmin => 409,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Validation(_) => 422,
            ApiError::RateLimited(_) | ApiError::LoginLocked(_) => 429,
            ApiError::HeadersTooLarge(_) => 431,
            ApiError::Unavailable { .. } => 503,
            ApiError::Misconfigured | ApiError::Internal { .. } => 500,
        }
    }

    /// A stable, snake_case code; the last segment of the problem `type` URI. Clients may branch on it.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedRequest(_) => "malformed_request",
            ApiError::DuplicateMember(_) => "duplicate_member_name",
            ApiError::UntrustedHost => "untrusted_host",
            ApiError::InvalidState => "invalid_state",
            ApiError::InvalidGrant => "invalid_grant",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::ReauthenticationRequired => "reauthentication_required",
            ApiError::StepUpRequired => "step_up_required",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::UsernameTaken => "username_taken",
            ApiError::EmailTaken => "email_taken",
            ApiError::IdentityTaken => "identity_taken",
            ApiError::LinkRequired => "link_required",
            ApiError::LastSignInMethod => "last_sign_in_method",
            ApiError::MfaAlreadyEnabled => "mfa_already_enabled",
            ApiError::PasskeyTaken => "passkey_taken",
            ApiError::InvalidPasskey(_) => "invalid_passkey",
            ApiError::SelfActionRefused(_) => "self_action_refused",
            ApiError::LastAdmin => "last_admin",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::Validation(_) => "validation_failed",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::LoginLocked(_) => "login_locked",
            ApiError::HeadersTooLarge(_) => "request_header_fields_too_large",
            ApiError::Unavailable { .. } => "service_unavailable",
            ApiError::Misconfigured => "misconfigured",
            ApiError::Internal { .. } => "internal_error",
        }
    }

    /// The short, human title for the status.
    pub fn title(&self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            409 => "Conflict",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The sentence a client sees in `detail`.
    pub fn detail(&self) -> String {
        match self {
            ApiError::MalformedRequest(why) => why.clone(),
            ApiError::DuplicateMember(name) => {
                format!("Request body has a duplicate member name: {name:?}")
            }
            ApiError::UntrustedHost => "Invalid host header".into(),
            ApiError::InvalidState => {
                "The sign-in could not be completed: start it again from the app".into()
            }
            ApiError::InvalidGrant => {
                "The code is invalid, expired or already used, or the code_verifier is wrong".into()
            }
            ApiError::ReauthenticationRequired => {
                "This operation needs a recent sign-in: send the account's password".into()
            }
            ApiError::LastAdmin => {
                "The last active administrator keeps the admin role and the account".into()
            }
            ApiError::StepUpRequired => {
                "This operation needs a recent second factor: POST /api/v1/auth/mfa/step-up \
                 with a code, then retry"
                    .into()
            }
            ApiError::MfaAlreadyEnabled => {
                "An authenticator app is already set up: remove it before enrolling another".into()
            }
            ApiError::Unauthorized(why)
            | ApiError::Forbidden(why)
            | ApiError::SelfActionRefused(why) => why.clone(),
            ApiError::UsernameTaken => USERNAME_TAKEN.into(),
            ApiError::EmailTaken => EMAIL_TAKEN.into(),
            ApiError::IdentityTaken => {
                "This provider account is linked to another account, or this account \
                 already has one of that provider"
                    .into()
            }
            ApiError::LinkRequired => {
                "An account with this email exists but its email is not verified: sign in to \
                 it and link the provider from there"
                    .into()
            }
            ApiError::LastSignInMethod => {
                "This is the account's last way to sign in: set a password, link a provider \
                 or add another passkey first"
                    .into()
            }
            ApiError::PasskeyTaken => "This passkey is registered already".into(),
            ApiError::InvalidPasskey(_) => {
                "The passkey could not be verified: start again from the options".into()
            }
            ApiError::NotFound => "Not found".into(),
            ApiError::MethodNotAllowed => "Method not allowed".into(),
            ApiError::PayloadTooLarge(limit) => {
                format!("Request body exceeds the limit of {limit} bytes")
            }
            ApiError::UnsupportedMediaType => "Content-Type must be application/json".into(),
            ApiError::Validation(errors) => match errors.as_slice() {
                [only] => format!("{}: {}", only.field, only.message),
                _ => "Request validation failed".into(),
            },
            ApiError::RateLimited(seconds) => {
                format!("Too many requests; retry in {seconds} seconds")
            }
            // No figure here: the wait is in `Retry-After`, and the body stays the same for
            // every attempt during the lockout.
            ApiError::LoginLocked(_) => {
                "Too many failed sign-in attempts; try again later or reset your password".into()
            }
            ApiError::HeadersTooLarge(limit) => {
                format!("Request headers exceed the limit of {limit} bytes")
            }
            ApiError::Unavailable { what, .. } => format!("{what} is unavailable"),
            ApiError::Misconfigured => "The service is not configured correctly".into(),
            ApiError::Internal { .. } => "Internal server error".into(),
        }
    }

    /// The full problem-details body for this error.
    pub fn to_problem(&self, request_id: &str) -> ProblemDetails {
        ProblemDetails {
            problem_type: format!("urn:edge-auth:problem:{}", self.code()),
            title: self.title(),
            status: self.status(),
            detail: self.detail(),
            request_id: request_id.to_owned(),
            errors: match self {
                ApiError::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail(), self.code())
    }
}

impl std::error::Error for ApiError {}

/// The 409 detail of a taken username.
pub const USERNAME_TAKEN: &str = "Username is already taken";
/// The 409 detail of a taken email address.
pub const EMAIL_TAKEN: &str = "Email is already registered";

/// The generic login failure: the same for an unknown account and a wrong password.
pub const INVALID_CREDENTIALS: &str = "Invalid username or password";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_maps_to_its_documented_status() {
        let cases = [
            (ApiError::MalformedRequest("x".into()), 400),
            (ApiError::DuplicateMember("x".into()), 400),
            (ApiError::UntrustedHost, 400),
            (ApiError::ReauthenticationRequired, 403),
            (ApiError::StepUpRequired, 403),
            (ApiError::MfaAlreadyEnabled, 409),
            (ApiError::LastAdmin, 409),
            (ApiError::Unauthorized("x".into()), 401),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound, 404),
            (ApiError::MethodNotAllowed, 405),
            (ApiError::UsernameTaken, 409),
            (ApiError::EmailTaken, 409),
            (ApiError::SelfActionRefused("x".into()), 409),
            (ApiError::PayloadTooLarge(10), 413),
            (ApiError::UnsupportedMediaType, 415),
            (ApiError::invalid("f", "bad"), 422),
            (ApiError::RateLimited(3), 429),
            (ApiError::LoginLocked(900), 429),
            (ApiError::HeadersTooLarge(8192), 431),
            (ApiError::unavailable("Database", "D1_ERROR: boom"), 503),
            (ApiError::Misconfigured, 500),
            (ApiError::internal("test", "boom"), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status(), status, "{error:?}");
            let problem = error.to_problem("rid");
            assert_eq!(problem.status, status);
            assert!(problem.problem_type.ends_with(error.code()));
        }
    }

    #[test]
    fn validation_problem_lists_field_errors() {
        let error = ApiError::Validation(vec![
            FieldError::new("username", "too short"),
            FieldError::new("password", "too short"),
        ]);
        let body = serde_json::to_value(error.to_problem("abc")).unwrap();
        assert_eq!(body["status"], 422);
        assert_eq!(body["request_id"], "abc");
        assert_eq!(body["errors"][0]["field"], "username");
        assert_eq!(body["errors"][1]["field"], "password");
        assert_eq!(body["detail"], "Request validation failed");
    }

    #[test]
    fn single_field_error_is_named_in_detail() {
        let problem = ApiError::invalid("email", "is not a valid email address").to_problem("r");
        assert_eq!(problem.detail, "email: is not a valid email address");
    }

    #[test]
    fn oversized_headers_are_a_431_problem() {
        let body = serde_json::to_value(ApiError::HeadersTooLarge(8192).to_problem("r")).unwrap();
        assert_eq!(body["status"], 431);
        assert_eq!(body["title"], "Request Header Fields Too Large");
        assert_eq!(
            body["type"],
            "urn:edge-auth:problem:request_header_fields_too_large"
        );
        assert_eq!(
            body["detail"],
            "Request headers exceed the limit of 8192 bytes"
        );
    }

    #[test]
    fn a_lockout_body_does_not_depend_on_its_wait() {
        let short = ApiError::LoginLocked(1).to_problem("r");
        let long = ApiError::LoginLocked(86_400).to_problem("r");
        assert_eq!(short, long);
        assert_eq!(short.status, 429);
        assert_eq!(short.title, "Too Many Requests");
    }

    #[test]
    fn an_unavailable_dependency_keeps_its_cause_out_of_the_body() {
        let error = ApiError::unavailable("Database", "D1_ERROR: no such table: users");
        let body = serde_json::to_string(&error.to_problem("r")).unwrap();
        assert!(body.contains("Database is unavailable"), "{body}");
        assert!(!body.contains("no such table"), "{body}");
        assert_eq!(
            error.internal_cause(),
            Some(("Database", "D1_ERROR: no such table: users"))
        );
        assert_eq!(ApiError::NotFound.internal_cause(), None);
        let internal = ApiError::internal("signing", "key rejected");
        assert_eq!(internal.status(), 500);
        assert_eq!(
            internal.internal_cause(),
            Some(("signing", "\"key rejected\""))
        );
        let body = serde_json::to_string(&internal.to_problem("r")).unwrap();
        assert!(!body.contains("key rejected"), "{body}");
    }

    #[test]
    fn conflicts_tell_their_cases_apart() {
        let codes: Vec<&str> = [
            ApiError::UsernameTaken,
            ApiError::EmailTaken,
            ApiError::SelfActionRefused("x".into()),
            ApiError::LastAdmin,
        ]
        .iter()
        .map(ApiError::code)
        .collect();
        assert_eq!(
            codes,
            [
                "username_taken",
                "email_taken",
                "self_action_refused",
                "last_admin"
            ]
        );
    }

    #[test]
    fn internal_errors_reveal_nothing() {
        let body =
            serde_json::to_value(ApiError::internal("signing", "key rejected").to_problem("r"))
                .unwrap();
        assert_eq!(body["detail"], "Internal server error");
        assert!(body.get("errors").is_none());
    }
}
