//! The OpenAPI 3.1 document of the service, generated from the code.
//!
//! Each handler carries its operation (`#[utoipa::path]`) beside its code, and the route
//! table (`routes::TablePaths`) collects them with the schemas of the request and response
//! types they name (`routes::requests`, `routes::views`: the types the handlers read and
//! send); [`document`] adds what operations share: the problem-details responses below, the
//! security schemes, and the answers every JSON or bearer operation has. Two checks keep it honest: a unit
//! test in `routes` that the table's routes and methods are exactly the document's, and
//! `tests/openapi.test.mjs`, which validates the Worker's real answers against it.
//!
//! Nothing here imports a handler, so handlers can import these components.

use crate::error::{FieldError, ProblemDetails};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};

/// The problem-details responses operations share, each a named component.
macro_rules! problem_responses {
    ($($name:ident $(+ $header:literal)?: $description:literal;)*) => {$(
        #[doc = $description]
        pub struct $name;

        impl<'s> utoipa::ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<Response>) {
                #[allow(unused_mut)]
                let mut response = problem_response($description);
                $(response.headers.insert($header.to_owned(), seconds_header());)?
                (stringify!($name), response.into())
            }
        }
    )*};
}

problem_responses! {
    BadRequest: "The body is not JSON or not an object, or the request is otherwise unreadable";
    Unauthorized: "Missing, malformed, expired, forged or revoked bearer token (or wrong credentials)";
    Forbidden: "Authenticated, but the token's roles do not allow this";
    NotFound: "No such resource";
    Conflict: "A unique value (username, email) is taken, or the state forbids the change";
    PayloadTooLarge: "The body exceeds MAX_BODY_BYTES";
    UnsupportedMediaType: "A JSON route got another content type";
    ValidationFailed: "Well-formed JSON whose fields are not acceptable; `errors` lists every field";
    RateLimited + "retry-after": "A rate limit (or a login lockout) is spent; retry after the given seconds";
    Unavailable: "A store (D1, KV, a Durable Object) did not answer";
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ProblemDetails")))
                .build(),
        )
        .build()
}

fn seconds_header() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(0)),
        )
        .description(Some("Seconds to wait"))
        .build()
}

/// Methods the router accepts as aliases of another on the same path, kept from the seed
/// service: `(path, method it stands for)`; the alias is always PUT.
const PUT_ALIASES: [(&str, &str); 3] = [
    ("/api/v1/users/me", "patch"),
    ("/api/v1/admin/users/{id}", "patch"),
    ("/api/v1/admin/users/{id}/ban", "post"),
];

/// Documents each PUT alias as a copy of the operation it stands for, with its own id.
struct PutAliases;

impl Modify for PutAliases {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, method) in PUT_ALIASES {
            let Some(item) = openapi.paths.paths.get_mut(path) else {
                continue;
            };
            let original = match method {
                "patch" => item.patch.as_ref(),
                _ => item.post.as_ref(),
            };
            let Some(mut alias) = original.cloned() else {
                continue;
            };
            alias.operation_id = alias.operation_id.map(|id| format!("{id}_put"));
            alias.summary = alias
                .summary
                .map(|summary| format!("{summary} (PUT: the same as {})", method.to_uppercase()));
            item.put = Some(alias);
        }
    }
}

/// The answers every operation of a kind shares, added by rule rather than repeated on each:
/// a JSON body is read by one reader (`http::body`), so it can be malformed (400), too large
/// (413), of another type (415) or invalid (422); a bearer token is checked by one
/// function (`http::auth`), so it can be refused (401).
struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let json_body = [
            ("400", "BadRequest"),
            ("413", "PayloadTooLarge"),
            ("415", "UnsupportedMediaType"),
            ("422", "ValidationFailed"),
        ];
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let takes_json = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|body| body.content.contains_key("application/json"));
                let bearer = operation.security.as_ref().is_some_and(|requirements| {
                    serde_json::to_value(requirements)
                        .is_ok_and(|value| value.to_string().contains("bearerAuth"))
                });
                let mut shared: Vec<(&str, &str)> = Vec::new();
                if takes_json {
                    shared.extend(json_body);
                }
                if bearer {
                    shared.push(("401", "Unauthorized"));
                }
                for (status, name) in shared {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| Ref::from_response_name(name).into());
                }
            }
        }
    }
}

/// Adds the bearer schemes: access tokens from `/api/v1/auth/login`, and the scrape token.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The `access_token` of a token response (a JWT signed with `JWT_ALGORITHM`: EdDSA, ES256 or RS256).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metricsToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`METRICS_TOKEN`; without it, /metrics answers only in development and test.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "edge-auth",
        description = "Sign-up, sign-in and sessions at the edge. Access tokens are signed JWTs \
                       that apps verify themselves with `/.well-known/jwks.json`; errors are \
                       RFC 9457 problem details.",
        license(name = "MIT")
    ),
    components(
        schemas(ProblemDetails, FieldError),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            ValidationFailed,
            RateLimited,
            Unavailable
        )
    ),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Sign-up, sign-in, tokens and the email flows"),
        (name = "oauth", description = "Sign-in through GitHub, Google or any OpenID Connect provider"),
        (name = "users", description = "The signed-in account"),
        (name = "sessions", description = "The signed-in account's sessions"),
        (name = "admin", description = "Administration; needs a role with the named permission"),
        (name = "meta", description = "Health, keys and this document"),
        (name = "pages", description = "HTML pages that links in emails open"),
        (name = "dev", description = "Development helpers; absent in production"),
    )
)]
pub struct ApiDoc;

/// The whole document: the operations in `paths` (the route table's) with the shared
/// components, and the answers and aliases added by rule.
pub fn document(paths: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.merge(paths);
    PutAliases.modify(&mut document);
    SharedResponses.modify(&mut document);
    document
}
