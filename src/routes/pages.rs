//! The small HTML pages that links in emails open.
//!
//! A GET only shows a form: mail scanners that pre-fetch links spend nothing. The form's
//! button POSTs the token back to the same path, which runs the same flow as the JSON API.
//! No script, no external resource; the CSP allows only the page's own inline style (by
//! hash) and form posts to itself.

use crate::domain::email::escape_html;
use crate::error::ApiError;
use crate::http::body::read_form;
use crate::http::context::Ctx;
use crate::http::response::{with_body, ApiResult};
use crate::routes::requests::PageForm;
use crate::runtime::now_seconds;
use crate::service::email::{self as flows, Proof};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};
use worker::Request;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.6rem 1.2rem}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.4rem 0 1rem}.error{color:#a00}";

fn page(ctx: &Ctx<'_>, status: u16, title: &str, body: &str) -> ApiResult {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title} · {app}</title>\
         <style>{STYLE}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = escape_html(title),
        app = escape_html(&ctx.config.email.app_name),
    );
    let response = with_body(status, "text/html; charset=utf-8", html.into_bytes());
    let style_hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    response
        .headers()
        .set(
            "content-security-policy",
            &format!(
                "default-src 'none'; style-src 'sha256-{style_hash}'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'"
            ),
        )
        .map_err(|error| ApiError::internal("page", error))?;
    Ok(response)
}

/// The pages that links in emails open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EmailPage {
    VerifyEmail,
    ResetPassword,
    ConfirmEmail,
}

struct PageText {
    title: &'static str,
    lead: &'static str,
    button: &'static str,
    done: &'static str,
}

fn text(route: EmailPage) -> PageText {
    match route {
        EmailPage::ResetPassword => PageText {
            title: "Choose a new password",
            lead: "Enter a new password for your account. Every device signed in to it will be signed out.",
            button: "Set new password",
            done: "Your password has been changed. Sign in with the new one.",
        },
        EmailPage::ConfirmEmail => PageText {
            title: "Confirm your new email",
            lead: "Confirm that this address should become the email of your account.",
            button: "Confirm this address",
            done: "Your email address has been changed.",
        },
        EmailPage::VerifyEmail => PageText {
            title: "Verify your email",
            lead: "Confirm that this address belongs to your account.",
            button: "Verify my email",
            done: "Your email address is verified. You can close this page.",
        },
    }
}

fn form(route: EmailPage, token: &str, error: Option<&str>) -> String {
    let text = text(route);
    let error = error
        .map(|message| format!("<p class=\"error\">{}</p>", escape_html(message)))
        .unwrap_or_default();
    let password = if route == EmailPage::ResetPassword {
        "<label for=\"new_password\">New password</label>\
         <input id=\"new_password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required minlength=\"8\" maxlength=\"128\">"
    } else {
        ""
    };
    format!(
        "<p>{lead}</p>{error}<form method=\"post\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">{password}\
         <button type=\"submit\">{button}</button></form>",
        lead = escape_html(text.lead),
        token = escape_html(token),
        button = escape_html(text.button),
    )
}

/// `GET` of a page: the form, nothing spent.
fn show(route: EmailPage, req: &Request, ctx: &Ctx<'_>) -> ApiResult {
    let token = req
        .url()
        .ok()
        .and_then(|url| {
            url.query_pairs()
                .find(|(name, _)| name == "token")
                .map(|(_, value)| value.into_owned())
        })
        .unwrap_or_default();
    if token.is_empty() {
        return page(ctx, 400, "Link incomplete", "<p>This link is missing its token. Open the link from the email again, or enter the code from the email in the app.</p>");
    }
    page(ctx, 200, text(route).title, &form(route, &token, None))
}

/// `POST` of a page's form: run the flow and show the outcome.
async fn submit(route: EmailPage, req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
    ctx.rate_limit("verify", ctx.config.verify_rate_limit)
        .await?;
    let posted = PageForm::from_pairs(&read_form(req, ctx.config.max_body_bytes).await?);
    let token = posted.token;
    let proof = Proof::Token(token.clone());
    let (deps, now) = (ctx.deps(), now_seconds());
    let outcome = match route {
        EmailPage::ResetPassword => {
            let new_password = posted.new_password.unwrap_or_default();
            flows::reset_password(&deps, &proof, &new_password, now).await
        }
        EmailPage::ConfirmEmail => flows::confirm_email_change(&deps, &proof, now).await,
        EmailPage::VerifyEmail => flows::verify_email(&deps, &proof, now).await,
    };
    match outcome {
        Ok(_) => {
            page(ctx, 200, text(route).title, &format!("<p>{}</p>", escape_html(text(route).done)))
        }
        // A password the policy refuses: show the form again with the reason.
        Err(ApiError::Validation(errors)) if errors.iter().any(|e| e.field == "new_password") => {
            let message = errors
                .iter()
                .find(|e| e.field == "new_password")
                .map(|e| format!("The new password {}.", e.message))
                .unwrap_or_default();
            page(ctx, 422, text(route).title, &form(route, &token, Some(&message)))
        }
        Err(ApiError::Validation(_)) => page(
            ctx,
            422,
            "Link expired or already used",
            "<p>This link is invalid, has expired, or was already used. Ask for a new message and use the newest one.</p>",
        ),
        Err(ApiError::EmailTaken) => page(
            ctx,
            409,
            "Address already in use",
            "<p>This address now belongs to another account, so it cannot become yours.</p>",
        ),
        Err(other) => Err(other),
    }
}

/// Declares one email page's two handlers with their operations: GET shows the form, POST
/// submits it.
macro_rules! email_page {
    ($route:ident, $path:literal, $form:ident, $form_summary:literal, $submit:ident, $submit_summary:literal) => {
        #[utoipa::path(
            get,
            path = $path,
            tag = "pages",
            summary = $form_summary,
            params(("token" = String, Query, description = "The token from the email's link")),
            responses((status = 200, description = "An HTML form; nothing is spent yet", content_type = "text/html")),
        )]
        pub async fn $form(req: &Request, ctx: &Ctx<'_>) -> ApiResult {
            show(EmailPage::$route, req, ctx)
        }

        #[utoipa::path(
            post,
            path = $path,
            tag = "pages",
            summary = $submit_summary,
            request_body(content = PageForm, content_type = "application/x-www-form-urlencoded"),
            responses(
                (status = 200, description = "An HTML page with the outcome", content_type = "text/html"),
                (status = 422, description = "An HTML page saying why it failed", content_type = "text/html"),
            ),
        )]
        pub async fn $submit(req: &mut Request, ctx: &Ctx<'_>) -> ApiResult {
            submit(EmailPage::$route, req, ctx).await
        }
    };
}

email_page!(
    VerifyEmail,
    "/verify-email",
    verify_email_form,
    "Verify your email address: the form an email's link opens",
    verify_email_submit,
    "Verify your email address: the form's post"
);
email_page!(
    ResetPassword,
    "/reset-password",
    reset_password_form,
    "Choose a new password: the form an email's link opens",
    reset_password_submit,
    "Choose a new password: the form's post"
);
email_page!(
    ConfirmEmail,
    "/confirm-email",
    confirm_email_form,
    "Confirm a new email address: the form an email's link opens",
    confirm_email_submit,
    "Confirm a new email address: the form's post"
);
