//! Account settings: password policy, argon2id cost, token lifetimes and login quotas.

use std::time::Duration;

use openframe_core::{Error, Result};

use tokio::sync::Semaphore;

use crate::ratelimit::Quota;

/// Rules a new password must satisfy.
///
/// The default asks for 12 to 128 characters, at least 3 of the 4 character classes
/// (lowercase, uppercase, digits, symbols — anything else, spaces included, counts as a
/// symbol), and that the password neither equals the account's email nor contains its local
/// part (local parts of at least [`PasswordPolicy::MIN_LOCAL_PART`] characters).
///
/// ```
/// use openframe_security::accounts::PasswordPolicy;
/// let policy = PasswordPolicy::default();
/// assert!(policy.check("correct Horse battery", "ops@acme.example").is_ok());
/// let err = policy.check("short", "ops@acme.example").unwrap_err();
/// assert_eq!(err.field(), Some("password"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values).
    pub min_length: usize,
    /// Most characters; also bounds the work a hash does.
    pub max_length: usize,
    /// How many of the 4 character classes must appear (0 to 4).
    pub min_character_classes: usize,
    /// Refuse passwords equal to the email or containing its local part.
    pub reject_email: bool,
}

impl PasswordPolicy {
    /// Local parts shorter than this are only checked for equality, not containment
    /// (otherwise `a@x.io` could never use a password with an `a` in it).
    pub const MIN_LOCAL_PART: usize = 3;

    /// Checks `password` for an account with `email`. Every violation is listed in one
    /// `InvalidInput { field: "password" }`; the reason never quotes the password.
    pub fn check(&self, password: &str, email: &str) -> Result<()> {
        let mut problems: Vec<String> = Vec::new();
        let length = password.chars().count();
        if length < self.min_length {
            problems.push(format!("must be at least {} characters", self.min_length));
        }
        if length > self.max_length {
            problems.push(format!("must be at most {} characters", self.max_length));
        }
        if password.chars().any(char::is_control) {
            problems.push("must not contain control characters".to_owned());
        }
        let classes = CharClasses::of(password);
        if classes.count() < self.min_character_classes {
            problems.push(format!(
                "must mix at least {} of lowercase letters, uppercase letters, digits and symbols; missing: {}",
                self.min_character_classes,
                classes.missing().join(", ")
            ));
        }
        if self.reject_email && contains_email(password, email) {
            problems.push("must not be or contain the email address".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid("password", problems.join("; ")))
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 128,
            min_character_classes: 3,
            reject_email: true,
        }
    }
}

/// Which character classes a password uses.
#[derive(Debug, Clone, Copy, Default)]
struct CharClasses {
    lower: bool,
    upper: bool,
    digit: bool,
    symbol: bool,
}

impl CharClasses {
    fn of(password: &str) -> Self {
        let mut c = Self::default();
        for ch in password.chars() {
            if ch.is_lowercase() {
                c.lower = true;
            } else if ch.is_uppercase() {
                c.upper = true;
            } else if ch.is_numeric() {
                c.digit = true;
            } else if !ch.is_control() {
                c.symbol = true;
            }
        }
        c
    }

    fn count(self) -> usize {
        [self.lower, self.upper, self.digit, self.symbol]
            .iter()
            .filter(|b| **b)
            .count()
    }

    fn missing(self) -> Vec<&'static str> {
        [
            (self.lower, "lowercase letters"),
            (self.upper, "uppercase letters"),
            (self.digit, "digits"),
            (self.symbol, "symbols"),
        ]
        .into_iter()
        .filter(|(has, _)| !has)
        .map(|(_, name)| name)
        .collect()
    }
}

/// Whether `password` equals `email` or contains its local part (case-insensitively).
fn contains_email(password: &str, email: &str) -> bool {
    let email = openframe_core::normalize_email(email);
    if email.is_empty() {
        return false;
    }
    let password = password.to_lowercase();
    if password == email {
        return true;
    }
    let local = email.split('@').next().unwrap_or_default();
    local.chars().count() >= PasswordPolicy::MIN_LOCAL_PART && password.contains(local)
}

/// Argon2id cost parameters. Validated on construction, so an `Argon2Params` value always
/// builds a working hasher. Existing hashes keep verifying when these change (the PHC string
/// records its own parameters) and are upgraded on the next successful login.
///
/// ```
/// use openframe_security::accounts::Argon2Params;
/// let p = Argon2Params::default();
/// assert_eq!((p.memory_kib(), p.iterations(), p.parallelism()), (19_456, 2, 1));
/// assert!(Argon2Params::new(1, 1, 1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

impl Argon2Params {
    /// The largest accepted memory cost (1 GiB).
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;

    /// Custom costs: memory in KiB (8 per lane to 1 GiB), iterations (at least 1) and lanes
    /// (1 to 16).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self> {
        if memory_kib > Self::MAX_MEMORY_KIB {
            return Err(Error::invalid("argon2.memoryKib", "must be at most 1 GiB"));
        }
        if !(1..=16).contains(&parallelism) {
            return Err(Error::invalid("argon2.parallelism", "must be 1 to 16"));
        }
        if iterations == 0 {
            return Err(Error::invalid("argon2.iterations", "must be at least 1"));
        }
        let params = Self {
            memory_kib,
            iterations,
            parallelism,
        };
        params
            .to_argon2()
            .map_err(|_| Error::invalid("argon2.memoryKib", "must be at least 8 KiB per lane"))?;
        Ok(params)
    }

    /// Tiny costs (8 KiB, 1 iteration, 1 lane) so tests hash in microseconds. Never use in
    /// production.
    pub const fn fast_for_tests() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }

    /// Memory cost in KiB.
    pub const fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Time cost (passes over memory).
    pub const fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Lanes.
    pub const fn parallelism(&self) -> u32 {
        self.parallelism
    }

    pub(crate) fn to_argon2(self) -> std::result::Result<argon2::Params, argon2::Error> {
        argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }
}

impl Default for Argon2Params {
    /// The OWASP baseline for argon2id: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Settings of the [`AccountService`](super::AccountService).
///
/// ```
/// use std::time::Duration;
/// use openframe_security::accounts::{AccountConfig, Argon2Params};
/// let config = AccountConfig {
///     argon2: Argon2Params::fast_for_tests(),
///     ..AccountConfig::default()
/// };
/// assert_eq!(config.invitation_ttl, Duration::from_secs(7 * 86_400));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// Argon2id cost of new hashes.
    pub argon2: Argon2Params,
    /// How long an invitation can be accepted (default 7 days).
    pub invitation_ttl: Duration,
    /// How long a password-reset token works (default 30 minutes).
    pub reset_ttl: Duration,
    /// Login attempts per account (tenant + email); default 5 per minute and 20 per hour.
    pub login_quota_per_account: Vec<Quota>,
    /// Login attempts per client IP (IPv6 per /64); default 30 per minute.
    pub login_quota_per_ip: Vec<Quota>,
    /// Password-reset requests per account (tenant + email); default 5 per hour.
    pub reset_quota_per_account: Vec<Quota>,
    /// How many argon2 hashes or verifications may run at once (each holds its memory cost
    /// on Tokio's blocking pool); more wait their turn. Default: twice the CPU count.
    pub max_concurrent_hashes: usize,
}

impl Default for AccountConfig {
    fn default() -> Self {
        Self {
            password_policy: PasswordPolicy::default(),
            argon2: Argon2Params::default(),
            invitation_ttl: Duration::from_secs(7 * 86_400),
            reset_ttl: Duration::from_secs(30 * 60),
            login_quota_per_account: vec![Quota::per_minute(5), Quota::per_hour(20)],
            login_quota_per_ip: vec![Quota::per_minute(30)],
            reset_quota_per_account: vec![Quota::per_hour(5)],
            max_concurrent_hashes: std::thread::available_parallelism()
                .map_or(2, |n| n.get().saturating_mul(2)),
        }
    }
}

impl AccountConfig {
    /// Checks the lifetimes (1 minute to 90 days), the password policy bounds, the hashing
    /// concurrency and every quota.
    pub fn validate(&self) -> Result<()> {
        let ttl_ok =
            |d: Duration| d >= Duration::from_secs(60) && d <= Duration::from_secs(90 * 86_400);
        if !ttl_ok(self.invitation_ttl) {
            return Err(Error::invalid(
                "invitationTtl",
                "must be between 1 minute and 90 days",
            ));
        }
        if !ttl_ok(self.reset_ttl) {
            return Err(Error::invalid(
                "resetTtl",
                "must be between 1 minute and 90 days",
            ));
        }
        if self.password_policy.min_length == 0
            || self.password_policy.min_length > self.password_policy.max_length
            || self.password_policy.max_length > 1024
        {
            return Err(Error::invalid(
                "passwordPolicy",
                "lengths must satisfy 1 <= min <= max <= 1024",
            ));
        }
        if self.password_policy.min_character_classes > 4 {
            return Err(Error::invalid(
                "passwordPolicy",
                "at most 4 character classes",
            ));
        }
        if !(1..=Semaphore::MAX_PERMITS.min(4096)).contains(&self.max_concurrent_hashes) {
            return Err(Error::invalid(
                "maxConcurrentHashes",
                "must be between 1 and 4096",
            ));
        }
        for quota in self
            .login_quota_per_account
            .iter()
            .chain(&self.login_quota_per_ip)
            .chain(&self.reset_quota_per_account)
        {
            quota.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(result: Result<()>) -> String {
        match result {
            Err(Error::InvalidInput { field, reason }) => {
                assert_eq!(field, "password");
                reason.into_owned()
            }
            other => panic!("expected a password error, got {other:?}"),
        }
    }

    #[test]
    fn policy_lists_every_violation_without_quoting_the_password() {
        let p = PasswordPolicy::default();
        let r = reason(p.check("abc", "x@y.io"));
        assert!(r.contains("at least 12 characters"), "{r}");
        assert!(r.contains("uppercase letters, digits, symbols"), "{r}");
        assert!(!r.contains("abc"));

        let r = reason(p.check(&"Aa1!".repeat(40), "x@y.io"));
        assert!(r.contains("at most 128"), "{r}");

        let r = reason(p.check("alllowercaseletters", "x@y.io"));
        assert!(
            r.contains("missing: uppercase letters, digits, symbols"),
            "{r}"
        );
    }

    #[test]
    fn policy_classes_and_email() {
        let p = PasswordPolicy::default();
        assert!(p.check("lower UPPER words", "x@y.io").is_ok());
        assert!(p.check("lowerUPPER12345", "x@y.io").is_ok());
        assert!(p.check("ÄÖÜäöü123456", "x@y.io").is_ok());
        assert!(p.check("lowerupper12345", "x@y.io").is_err());
        let r = reason(p.check("Xalice.smith-2026!", "Alice.Smith@Acme.example"));
        assert!(r.contains("email"), "{r}");
        assert!(p.check("Alice@Acme.example", "alice@acme.example").is_err());
        // A two-letter local part is only compared for equality.
        assert!(p.check("Jolly Good 2026", "jo@acme.example").is_ok());
        assert!(p.check("Tab\there12345", "x@y.io").is_err());
    }

    #[test]
    fn argon2_params_are_validated() {
        assert!(Argon2Params::new(8, 1, 1).is_ok());
        assert!(Argon2Params::new(7, 1, 1).is_err());
        assert!(Argon2Params::new(64, 0, 1).is_err());
        assert!(Argon2Params::new(64, 1, 0).is_err());
        assert!(Argon2Params::new(16, 1, 4).is_err());
        assert!(Argon2Params::default().to_argon2().is_ok());
        assert!(Argon2Params::fast_for_tests().to_argon2().is_ok());
    }

    #[test]
    fn config_validation() {
        assert!(AccountConfig::default().validate().is_ok());
        let bad = AccountConfig {
            reset_ttl: Duration::from_secs(1),
            ..AccountConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().field(), Some("resetTtl"));
        let bad = AccountConfig {
            login_quota_per_ip: vec![Quota::per_minute(0)],
            ..AccountConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = AccountConfig {
            max_concurrent_hashes: 0,
            ..AccountConfig::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field(),
            Some("maxConcurrentHashes")
        );
    }
}
