//! `/api/v1/openapi.json` and the self-contained docs page `/api/v1/docs`.

use std::sync::OnceLock;

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

pub(super) async fn openapi_json() -> Response {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    let mut response = Json(DOC.get_or_init(super::openapi_document).clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// A page that renders `openapi.json` without any external script or stylesheet.
pub(super) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OpenFrame External API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} .op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;text-transform:uppercase}
.get{color:#1f6feb}.post{color:#1a7f37}.put,.patch{color:#9a6700}.delete{color:#cf222e}
code,pre{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px} table{border-collapse:collapse}
td,th{border-bottom:1px solid #eee;padding:.2rem .6rem;text-align:left;vertical-align:top}
.desc{white-space:pre-wrap}
</style></head><body>
<h1 id="title">OpenFrame External API</h1><p><a href="openapi.json">openapi.json</a></p>
<div id="intro" class="desc"></div><div id="ops">Loading…</div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
fetch("openapi.json").then(r => r.json()).then(doc => {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  document.getElementById("intro").textContent = doc.info.description || "";
  let html = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      html += `<div class="op"><span class="m ${method}">${esc(method)}</span><code>${esc(path)}</code>`;
      html += `<p class="desc">${esc(op.summary || "")}${op.description ? "\n" + esc(op.description) : ""}</p>`;
      if (op.parameters && op.parameters.length) {
        html += "<table><tr><th>parameter</th><th>in</th><th>description</th></tr>";
        for (const p of op.parameters) html += `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td><td>${esc(p.description)}</td></tr>`;
        html += "</table>";
      }
      html += "<p>" + Object.entries(op.responses || {}).map(([s, r]) => `<b>${esc(s)}</b> ${esc(r.description)}`).join(" · ") + "</p></div>";
    }
  }
  document.getElementById("ops").innerHTML = html;
}).catch(e => { document.getElementById("ops").textContent = "Could not load openapi.json: " + e; });
</script></body></html>
"#;
