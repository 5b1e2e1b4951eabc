//! Input checks for sign-up and invitations: names, domains, emails, tenant ids.

use openframe_core::{Error, Result, TenantId, normalize_email};

/// Tenant ids that collide with routes of the authorization server and gateway
/// (`/sas/{tenant}`, `/oauth/*`, `/login`, ...). Compared case-insensitively.
pub const RESERVED_TENANT_IDS: &[&str] = &[
    "admin",
    "api",
    "assets",
    "clients",
    "connect",
    "health",
    "invitations",
    "login",
    "logout",
    "metrics",
    "oauth",
    "oauth2",
    "password-reset",
    "public",
    "register",
    "sas",
    "sso",
    "sso-onboarding",
    "static",
    "tenant",
    "tenants",
    "userinfo",
    "well-known",
];

/// Longest person name, in characters.
const MAX_PERSON_NAME: usize = 50;
/// Longest generated tenant-id slug (a 7-character suffix may follow).
const MAX_SLUG: usize = 40;

/// A person's name: trimmed, 1–50 characters, starting with a letter, then letters,
/// combining marks, apostrophes, spaces, hyphens or periods.
pub(crate) fn person_name(field: &'static str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be blank"));
    }
    if value.chars().count() > MAX_PERSON_NAME {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_PERSON_NAME} characters"),
        ));
    }
    let mut chars = value.chars();
    let starts_with_letter = chars.next().is_some_and(char::is_alphabetic);
    let allowed = |c: char| {
        c.is_alphabetic()
            || ('\u{0300}'..='\u{036f}').contains(&c)
            || matches!(c, '\'' | '\u{2019}' | ' ' | '-' | '.')
    };
    if !starts_with_letter || !value.chars().all(allowed) {
        return Err(Error::invalid(
            field,
            "must start with a letter and contain only letters, spaces, apostrophes, hyphens and periods",
        ));
    }
    Ok(value.to_owned())
}

/// A name from an identity provider: trimmed, blank means none, at most 255 characters and
/// no control characters (providers format names freely).
pub(crate) fn upstream_name(field: &'static str, value: Option<&str>) -> Result<Option<String>> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    openframe_core::validate::name(field, value)?;
    Ok(Some(value.to_owned()))
}

/// A tenant display name: trimmed, 2–100 characters, no control characters.
pub(crate) fn tenant_name(value: &str) -> Result<String> {
    let value = value.trim();
    let len = value.chars().count();
    if !(2..=100).contains(&len) {
        return Err(Error::invalid("tenantName", "must be 2 to 100 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            "tenantName",
            "must not contain control characters",
        ));
    }
    Ok(value.to_owned())
}

/// A DNS host name: trimmed, lowercased, at most 253 characters, at least two labels of
/// 1–63 letters, digits and hyphens that neither start nor end with a hyphen, and an
/// alphabetic top-level label.
pub(crate) fn domain(value: &str) -> Result<String> {
    let value = value.trim().trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = value.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let tld_ok = labels
        .last()
        .is_some_and(|t| t.len() >= 2 && t.bytes().all(|b| b.is_ascii_alphabetic()));
    if value.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
        return Err(Error::invalid(
            "domain",
            "must be a host name such as acme.example",
        ));
    }
    Ok(value)
}

/// An email address: trimmed and lowercased, at most 254 characters, one `@`, a non-empty
/// local part of printable ASCII without spaces, and a valid domain.
pub(crate) fn email(value: &str) -> Result<String> {
    let value = normalize_email(value);
    let invalid = || Error::invalid("email", "must be an email address");
    if value.len() > 254 {
        return Err(invalid());
    }
    let (local, host) = value.split_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|b| {
            b.is_ascii_graphic()
                && !matches!(
                    b,
                    b'@' | b'"'
                        | b'('
                        | b')'
                        | b','
                        | b':'
                        | b';'
                        | b'<'
                        | b'>'
                        | b'['
                        | b'\\'
                        | b']'
                )
        });
    if !local_ok || domain(host).is_err() {
        return Err(invalid());
    }
    Ok(value)
}

/// Refuses tenant ids that are reserved route names.
pub(crate) fn tenant_id_not_reserved(id: &TenantId) -> Result<()> {
    if RESERVED_TENANT_IDS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(id.as_str()))
    {
        return Err(Error::invalid("tenantId", "is reserved"));
    }
    Ok(())
}

/// A tenant-id slug from a display name: lowercase ASCII letters and digits, other runs
/// become one hyphen, at most 40 characters; `tenant` when nothing is left or the slug is
/// reserved.
pub(crate) fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() || RESERVED_TENANT_IDS.contains(&out.as_str()) {
        "tenant".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("Acme Corp."), "acme-corp");
        assert_eq!(slug("  --Ünïcode & Söhne GmbH "), "n-code-s-hne-gmbh");
        assert_eq!(slug("!!!"), "tenant");
        assert_eq!(slug("Login"), "tenant");
        assert_eq!(slug(&"a".repeat(100)).len(), 40);
        assert!(TenantId::parse(slug("x y z")).is_ok());
    }

    #[test]
    fn domains_and_emails() {
        assert_eq!(domain(" Acme.Example ").unwrap(), "acme.example");
        for bad in [
            "acme",
            "-acme.example",
            "acme..example",
            "acme.ex_ample",
            "a b.io",
            "acme.123",
        ] {
            assert!(domain(bad).is_err(), "{bad}");
        }
        assert_eq!(email(" Ops+x@Acme.Example ").unwrap(), "ops+x@acme.example");
        for bad in [
            "ops",
            "@acme.example",
            "ops@",
            "o ps@acme.example",
            "ops@acme",
            "a@b@c.io",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(person_name("firstName", " Zoë ").unwrap(), "Zoë");
        assert!(person_name("firstName", "O'Brien-Smith").is_ok());
        assert!(person_name("firstName", "1abc").is_err());
        assert!(person_name("firstName", "").is_err());
        assert!(person_name("firstName", "a<script>").is_err());
        assert!(person_name("firstName", &"a".repeat(51)).is_err());
        assert_eq!(upstream_name("firstName", Some("  ")).unwrap(), None);
        assert!(upstream_name("firstName", Some("x\u{7}")).is_err());
        assert!(tenant_name("A").is_err());
        assert!(tenant_name("Acme").is_ok());
        assert!(tenant_id_not_reserved(&TenantId::parse("SAS").unwrap()).is_err());
    }
}
