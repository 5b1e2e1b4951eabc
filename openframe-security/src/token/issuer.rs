//! Issuer URLs: every tenant is its own issuer, `{public_url}{path_template}`.

use openframe_core::{Error, Result, TenantId};
use url::Url;

/// The default issuer path: `/sas/{tenant}` (as in the original deployment behind the gateway).
pub const DEFAULT_PATH_TEMPLATE: &str = "/sas/{tenant}";

const PLACEHOLDER: &str = "{tenant}";

/// Maps tenants to issuer URLs and back (the issuer allow-list of token verification).
///
/// ```
/// use openframe_core::TenantId;
/// use openframe_security::token::IssuerConfig;
/// let issuers = IssuerConfig::new("https://id.example.com".parse().unwrap())?;
/// let acme = TenantId::parse("acme")?;
/// assert_eq!(issuers.issuer(&acme), "https://id.example.com/sas/acme");
/// assert_eq!(issuers.tenant_of("https://id.example.com/sas/acme"), Some(acme));
/// assert_eq!(issuers.tenant_of("https://evil.example/sas/acme"), None);
/// assert_eq!(issuers.tenant_of("https://id.example.com/sas/acme/x"), None);
/// # Ok::<(), openframe_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// The public base URL (scheme, host, optional port and base path; no query or fragment).
    pub public_url: Url,
    /// The issuer path under `public_url`, with exactly one `{tenant}` placeholder
    /// (default [`DEFAULT_PATH_TEMPLATE`]).
    pub path_template: String,
}

impl IssuerConfig {
    /// Issuers `{public_url}/sas/{tenant}`. The URL must be http(s) without query or fragment.
    pub fn new(public_url: Url) -> Result<Self> {
        let config = Self {
            public_url,
            path_template: DEFAULT_PATH_TEMPLATE.to_owned(),
        };
        config.validate()?;
        Ok(config)
    }

    /// Uses another path template, e.g. `"/{tenant}"` or `"/t/{tenant}/oidc"`.
    pub fn with_path_template(mut self, template: impl Into<String>) -> Result<Self> {
        self.path_template = template.into();
        self.validate()?;
        Ok(self)
    }

    /// Checks the URL (http or https, a host, no query, fragment or credentials) and the
    /// template (starts with `/`, one `{tenant}`, no `?` or `#`).
    pub fn validate(&self) -> Result<()> {
        let url = &self.public_url;
        if !matches!(url.scheme(), "https" | "http")
            || !url.has_host()
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(Error::invalid(
                "publicUrl",
                "must be an http(s) URL with a host and no query, fragment or credentials",
            ));
        }
        let t = &self.path_template;
        if !t.starts_with('/') || t.matches(PLACEHOLDER).count() != 1 || t.contains(['?', '#']) {
            return Err(Error::invalid(
                "pathTemplate",
                "must start with '/' and contain '{tenant}' exactly once",
            ));
        }
        Ok(())
    }

    fn base(&self) -> &str {
        self.public_url.as_str().trim_end_matches('/')
    }

    fn template_parts(&self) -> Option<(&str, &str)> {
        let (before, after) = self.path_template.split_once(PLACEHOLDER)?;
        (!after.contains(PLACEHOLDER)).then_some((before, after))
    }

    /// The issuer URL of `tenant`.
    pub fn issuer(&self, tenant: &TenantId) -> String {
        let mut out = String::with_capacity(self.base().len() + self.path_template.len() + 64);
        out.push_str(self.base());
        out.push_str(&self.path_template.replacen(PLACEHOLDER, tenant.as_str(), 1));
        out
    }

    /// The tenant whose issuer is exactly `iss` (same base, same template, a valid tenant id),
    /// or `None` for anything else.
    pub fn tenant_of(&self, iss: &str) -> Option<TenantId> {
        let (before, after) = self.template_parts()?;
        let tenant = iss
            .strip_prefix(self.base())?
            .strip_prefix(before)?
            .strip_suffix(after)?;
        TenantId::parse(tenant).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> IssuerConfig {
        IssuerConfig::new(url.parse().unwrap()).unwrap()
    }

    #[test]
    fn round_trips_and_exact_matching() {
        let acme = TenantId::parse("acme").unwrap();
        for url in ["https://id.example.com", "https://id.example.com/"] {
            let c = config(url);
            assert_eq!(c.issuer(&acme), "https://id.example.com/sas/acme");
        }
        let c = config("https://example.com:8443/auth/");
        let iss = c.issuer(&acme);
        assert_eq!(iss, "https://example.com:8443/auth/sas/acme");
        assert_eq!(c.tenant_of(&iss), Some(acme.clone()));
        for bad in [
            "https://example.com:8443/auth/sas/",
            "https://example.com:8443/auth/sas/acme/",
            "https://example.com:8443/auth/sas/ac/me",
            "https://example.com:8443/auth/sas/../acme",
            "https://example.com:8443/auth/sas/_platform",
            "https://example.com:8443/auth/sas/acme?x",
            "https://example.com/auth/sas/acme",
            "http://example.com:8443/auth/sas/acme",
            "https://example.com:8443/auth/SAS/acme",
            "https://example.com:8443.evil/auth/sas/acme",
            "",
        ] {
            assert_eq!(c.tenant_of(bad), None, "{bad}");
        }
        let c = config("https://id.example.com")
            .with_path_template("/t/{tenant}/oidc")
            .unwrap();
        assert_eq!(c.issuer(&acme), "https://id.example.com/t/acme/oidc");
        assert_eq!(
            c.tenant_of("https://id.example.com/t/acme/oidc"),
            Some(acme)
        );
        assert_eq!(c.tenant_of("https://id.example.com/t/acme"), None);
    }

    #[test]
    fn invalid_configuration() {
        for url in [
            "ftp://x",
            "https://x/?q=1",
            "https://x/#f",
            "https://u:p@x/",
        ] {
            assert!(IssuerConfig::new(url.parse().unwrap()).is_err(), "{url}");
        }
        let c = config("https://x");
        for t in ["sas/{tenant}", "/sas", "/{tenant}/{tenant}", "/{tenant}?a"] {
            assert!(c.clone().with_path_template(t).is_err(), "{t}");
        }
        let broken = IssuerConfig {
            path_template: "/none".into(),
            ..c
        };
        assert_eq!(broken.tenant_of("https://x/none"), None);
    }
}
