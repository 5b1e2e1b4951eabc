//! Delivery of invitation and password-reset messages.

use std::sync::Mutex;

use async_trait::async_trait;
use openframe_core::{Result, TenantId};

/// A message to send. `link` carries a single-use secret: never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// The tenant.
    pub tenant: TenantId,
    /// Recipient.
    pub to: String,
    /// `invitation` or `password-reset`.
    pub kind: &'static str,
    /// The secret token the link carries.
    pub token: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("tenant", &self.tenant)
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("token", &"***")
            .finish()
    }
}

/// Sends mail. Implement it with your SMTP or mail API client.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug + 'static {
    /// Sends one message.
    async fn send(&self, mail: OutgoingMail) -> Result<()>;
}

/// Drops every message with a warning (no mail configured).
#[derive(Debug, Default)]
pub struct DisabledMailer;

#[async_trait]
impl Mailer for DisabledMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<()> {
        tracing::warn!(tenant = %mail.tenant, kind = mail.kind, "no mailer configured: message dropped");
        Ok(())
    }
}

/// Keeps messages in memory (tests, demos).
#[derive(Debug, Default)]
pub struct RecordingMailer {
    sent: Mutex<Vec<OutgoingMail>>,
}

impl RecordingMailer {
    /// Messages sent so far.
    pub fn sent(&self) -> Vec<OutgoingMail> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: OutgoingMail) -> Result<()> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(mail);
        }
        Ok(())
    }
}
