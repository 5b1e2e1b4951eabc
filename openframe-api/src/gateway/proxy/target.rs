//! Where a proxied request goes: the tool key and the rest of the path taken from the raw
//! request path, checked for traversal, joined onto the tool's API URL, with the query kept
//! (minus the caller's `authorization` parameter).

use openframe_core::{Error, IntegratedTool, Result};
use url::Url;

/// The path prefix of the tool proxy.
pub const PREFIX: &str = "/tools/";

/// The tool key and the remaining raw (still percent-encoded) path of a proxied request.
pub(super) fn split_path(path: &str) -> Result<(&str, &str)> {
    let rest = path
        .strip_prefix(PREFIX)
        .ok_or_else(|| Error::invalid("path", "not a tool proxy path"))?;
    let (key, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    openframe_core::id::validate_id("toolKey", key)?;
    check_segments(tail)?;
    Ok((key, tail))
}

/// Refuses `.` and `..` segments (also percent-encoded), encoded slashes and backslashes,
/// NUL and control characters: the proxied path can never climb out of the tool's base path.
fn check_segments(tail: &str) -> Result<()> {
    for segment in tail.split('/') {
        let bytes = percent_decode(segment);
        let bad = bytes == b"." as &[u8]
            || bytes == b".." as &[u8]
            || bytes
                .iter()
                .any(|&b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f);
        if bad {
            return Err(Error::invalid(
                "path",
                "the proxied path may not contain '.', '..', encoded slashes, backslashes or control characters",
            ));
        }
    }
    Ok(())
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The query without the caller's `authorization` parameter (a WebSocket token).
pub(super) fn filtered_query(query: Option<&str>) -> Option<String> {
    let query = query?;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = String::from_utf8_lossy(&percent_decode(name)).to_ascii_lowercase();
            !pair.is_empty() && name != "authorization" && name != "access_token"
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The tool's API base URL: its first URL of kind `API` (http or https, credentials removed).
pub(super) fn api_base(tool: &IntegratedTool) -> Option<Url> {
    let raw = tool
        .urls
        .iter()
        .find(|u| u.kind.eq_ignore_ascii_case("API"))?;
    let mut url = Url::parse(&raw.url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_fragment(None);
    url.set_query(None);
    Some(url)
}

/// `base` + `/` + `tail`, with `query`.
pub(super) fn join(base: &Url, tail: &str, query: Option<&str>) -> Url {
    let mut url = base.clone();
    let path = format!("{}/{}", base.path().trim_end_matches('/'), tail);
    url.set_path(&path);
    url.set_query(query);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_refuses_traversal() {
        assert_eq!(
            split_path("/tools/mesh/api/v1/x").unwrap(),
            ("mesh", "api/v1/x")
        );
        assert_eq!(split_path("/tools/mesh").unwrap(), ("mesh", ""));
        for bad in [
            "/tools/mesh/../etc/passwd",
            "/tools/mesh/a/%2e%2e/b",
            "/tools/mesh/a/%2E%2e",
            "/tools/mesh/a%2fb",
            "/tools/mesh/a%5cb",
            "/tools/mesh/./x",
            "/tools/mesh/a%00b",
            "/tools/..%2f/x",
            "/tools/me.sh/x",
        ] {
            assert!(split_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_loses_only_the_callers_token() {
        assert_eq!(
            filtered_query(Some("a=1&authorization=Bearer%20x&b=2&Access_Token=y")).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(filtered_query(Some("authorization=x")), None);
    }

    #[test]
    fn joins_under_the_base_path() {
        let base = Url::parse("https://user:pw@tool.internal:8443/api/").unwrap();
        let mut tool = IntegratedTool::new(
            "t",
            "T",
            openframe_core::ToolType::FleetMdm,
            Default::default(),
        );
        tool.urls.push(openframe_core::ToolUrl {
            url: base.to_string(),
            kind: "api".into(),
        });
        let base = api_base(&tool).unwrap();
        assert_eq!(
            join(&base, "v1/hosts", Some("q=1")).as_str(),
            "https://tool.internal:8443/api/v1/hosts?q=1"
        );
    }
}
