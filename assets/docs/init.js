// Swagger UI for this Worker's own OpenAPI document. Kept out of the page so the CSP can
// forbid inline script. "Try it out" calls the same origin; an "Authorize"d bearer token is
// kept across reloads in this browser only.
window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    validatorUrl: null,
  });
});
