//! `/docs` (Swagger UI) and `/redoc` (ReDoc): the OpenAPI document for people; and
//! `/account`, the account-security page (sign in with a password or a passkey, finish a
//! second factor, set up an authenticator app, manage passkeys), a static page and script
//! of this repository (`assets/account/`).
//!
//! The pages and the libraries are static assets, copied at build time from the
//! `swagger-ui-dist` and `redoc` npm packages (nothing loads from a CDN), and served through
//! the `ASSETS` binding so this Worker still sets every header. Each page gets a CSP that
//! allows only its own files: no inline script, no other origin; the libraries need inline
//! styles, and ReDoc runs its search in a `blob:` worker.

use crate::error::ApiError;
use crate::http::context::Ctx;
use crate::http::log;
use crate::http::response::{with_body, ApiResult};
use crate::routes::openapi::NotFound;

/// The Workers static-assets binding's name in `wrangler.toml`.
pub const ASSETS_BINDING: &str = "ASSETS";

/// Which viewer a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    SwaggerUi,
    Redoc,
    /// The account-security page.
    Account,
}

impl Viewer {
    fn directory(self) -> &'static str {
        match self {
            Viewer::SwaggerUi => "docs",
            Viewer::Redoc => "redoc",
            Viewer::Account => "account",
        }
    }

    fn content_security_policy(self) -> &'static str {
        match self {
            Viewer::SwaggerUi => {
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'self'"
            }
            Viewer::Redoc => {
                "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                 img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                 worker-src blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            }
            // Our own page: same-origin script and style only, nothing inline.
            Viewer::Account => {
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
            }
        }
    }
}

/// A file name the route table matched under a viewer's directory, when it is one path
/// segment of safe characters (no dot files, no escapes).
fn safe_file_name(name: &str) -> Option<&str> {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_'));
    safe.then_some(name)
}

/// The `{file}` of the request, or 404.
fn requested_file<'a>(ctx: &'a Ctx<'_>) -> Result<&'a str, ApiError> {
    safe_file_name(ctx.param("file")?).ok_or(ApiError::NotFound)
}

async fn serve(ctx: &Ctx<'_>, viewer: Viewer, name: &str) -> ApiResult {
    let assets = ctx.env.assets(ASSETS_BINDING).map_err(|error| {
        log::error(ctx.meta, "assets_unavailable", &error.to_string());
        ApiError::NotFound
    })?;
    let url = format!("https://assets.invalid/{}/{name}", viewer.directory());
    let mut response = assets
        .fetch(url, None)
        .await
        .map_err(|error| ApiError::unavailable("Documentation assets", error))?;
    if response.status_code() != 200 {
        return Err(ApiError::NotFound);
    }
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/octet-stream".into());
    let body = response
        .bytes()
        .await
        .map_err(|error| ApiError::unavailable("Documentation assets", error))?;
    let served = with_body(200, &content_type, body);
    let headers = served.headers();
    headers
        .set("content-security-policy", viewer.content_security_policy())
        .and_then(|()| {
            // The libraries change only with a deploy; the pages stay fresh.
            let cache = if name == "index.html" {
                "no-cache"
            } else {
                "public, max-age=3600"
            };
            headers.set("cache-control", cache)
        })
        .map_err(|error| ApiError::internal("documentation asset", error))?;
    Ok(served)
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "meta",
    operation_id = "swagger_ui",
    summary = "Swagger UI for this document: try every operation from the browser",
    responses((status = 200, description = "The Swagger UI page", content_type = "text/html")),
)]
/// `GET /docs`.
pub async fn swagger_ui(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::SwaggerUi, "index.html").await
}

#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "meta",
    operation_id = "swagger_ui_file",
    summary = "A file of the Swagger UI page (script, style sheet, icon)",
    params(("file" = String, Path, description = "e.g. swagger-ui-bundle.js")),
    responses(
        (status = 200, description = "The file, with its own media type", content_type = "*/*"),
        (status = 404, response = NotFound),
    ),
)]
/// `GET /docs/{file}`.
pub async fn swagger_ui_file(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::SwaggerUi, requested_file(ctx)?).await
}

#[utoipa::path(
    get,
    path = "/redoc",
    tag = "meta",
    operation_id = "redoc",
    summary = "ReDoc for this document: a readable reference",
    responses((status = 200, description = "The ReDoc page", content_type = "text/html")),
)]
/// `GET /redoc`.
pub async fn redoc(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::Redoc, "index.html").await
}

#[utoipa::path(
    get,
    path = "/redoc/{file}",
    tag = "meta",
    operation_id = "redoc_file",
    summary = "A file of the ReDoc page",
    params(("file" = String, Path, description = "e.g. redoc.standalone.js")),
    responses(
        (status = 200, description = "The file, with its own media type", content_type = "*/*"),
        (status = 404, response = NotFound),
    ),
)]
/// `GET /redoc/{file}`.
pub async fn redoc_file(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::Redoc, requested_file(ctx)?).await
}

#[utoipa::path(
    get,
    path = "/account",
    tag = "pages",
    operation_id = "account_page",
    summary = "Account security: sign in (password, passkey, second factor), set up an authenticator app, manage passkeys",
    responses((status = 200, description = "The page", content_type = "text/html")),
)]
/// `GET /account`.
pub async fn account(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::Account, "index.html").await
}

#[utoipa::path(
    get,
    path = "/account/{file}",
    tag = "pages",
    operation_id = "account_page_file",
    summary = "A file of the account page (script, style sheet)",
    params(("file" = String, Path, description = "e.g. account.js")),
    responses(
        (status = 200, description = "The file, with its own media type", content_type = "*/*"),
        (status = 404, response = NotFound),
    ),
)]
/// `GET /account/{file}`.
pub async fn account_file(ctx: &Ctx<'_>) -> ApiResult {
    serve(ctx, Viewer::Account, requested_file(ctx)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_file_names_pass() {
        assert_eq!(
            safe_file_name("swagger-ui-bundle.js"),
            Some("swagger-ui-bundle.js")
        );
        for bad in ["", "..", ".hidden", "%2e%2e", "a b.js", "a\\b.js"] {
            assert_eq!(safe_file_name(bad), None, "{bad}");
        }
    }
}
