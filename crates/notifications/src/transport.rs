//! Where rendered messages go: an SMTP server (production) or the dev mailbox (embedded).

use platform::dev_mailbox::DevMailbox;

/// How messages leave the process.
#[derive(Debug, Clone)]
pub enum MailTransport {
    Smtp(SmtpSettings),
    DevMailbox(DevMailbox),
}

/// An SMTP relay, parsed from `EMPORIUM_SMTP_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub url: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &platform::db::redact_url(&self.url))
            .finish()
    }
}

impl SmtpSettings {
    pub fn from_url(url: &str) -> Result<Self, String> {
        Ok(Self { url: url.to_owned() })
    }
}
