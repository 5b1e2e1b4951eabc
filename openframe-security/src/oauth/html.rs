//! Minimal server-rendered pages (login, errors), with every dynamic value escaped.

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}\
label,input,button{{display:block;width:100%;box-sizing:border-box;margin:.4rem 0}}input,button{{padding:.5rem}}\
.error{{color:#b00020}}.sso a{{display:block;margin:.4rem 0}}</style></head><body>{}</body></html>",
        escape(title),
        body
    )
}

/// One "sign in with" link on the login page.
#[derive(Debug, Clone)]
pub struct SsoLink {
    /// Button text.
    pub label: String,
    /// Where it goes (already URL-encoded).
    pub href: String,
}

/// The login form. `return_to` and `csrf` are echoed in hidden fields.
pub fn login_page(
    tenant_name: &str,
    action: &str,
    return_to: &str,
    csrf: &str,
    error: Option<&str>,
    email: &str,
    sso: &[SsoLink],
) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let sso_links: String = sso
        .iter()
        .map(|l| format!("<a href=\"{}\">{}</a>", escape(&l.href), escape(&l.label)))
        .collect();
    let sso = if sso_links.is_empty() {
        String::new()
    } else {
        format!("<div class=\"sso\">{sso_links}</div>")
    };
    page(
        "Sign in",
        &format!(
            "<h1>Sign in to {}</h1>{error}<form method=\"post\" action=\"{}\">\
<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"return_to\" value=\"{}\">\
<label for=\"username\">Email</label><input id=\"username\" name=\"username\" type=\"email\" autocomplete=\"username\" required value=\"{}\">\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>{sso}",
            escape(tenant_name),
            escape(action),
            escape(csrf),
            escape(return_to),
            escape(email),
        ),
    )
}

/// A plain message page (errors that must not redirect, signed-out notice).
pub fn message_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(message)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_in_every_field() {
        let html = login_page(
            "<b>",
            "/a\"b",
            "x'><script>",
            "c\"",
            Some("<i>"),
            "e@x\"",
            &[],
        );
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>") && !html.contains("<i>"));
        assert!(html.contains("&lt;script&gt;") && html.contains("&quot;"));
    }
}
