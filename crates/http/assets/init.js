// Starts the vendored Swagger UI on our own OpenAPI document. A file rather than an inline
// script, so that a strict Content-Security-Policy (script-src 'self') can be used.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The online validator badge would contact another host; the page needs none.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    persistAuthorization: false,
  });
});
