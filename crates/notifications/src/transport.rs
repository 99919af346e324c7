//! Where rendered messages go: an SMTP server (production, or embedded with `EMPORIUM_SMTP_URL`)
//! or the in-memory dev mailbox (embedded mode).
//!
//! Nothing here logs a message body: bodies carry one-time tokens.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use platform::config::{ConfigError, ConfigSource};
use platform::dev_mailbox::DevMailbox;

/// How long one SMTP exchange (connect, TLS, AUTH, DATA) may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(15);

/// How messages leave the process.
#[derive(Debug, Clone)]
pub enum MailTransport {
    Smtp(SmtpSettings),
    DevMailbox(DevMailbox),
}

impl MailTransport {
    /// SMTP when `EMPORIUM_SMTP_URL` is set; otherwise the dev mailbox if one is given (embedded
    /// mode). Production mode passes no mailbox, so a missing URL is an error naming the variable.
    pub fn from_source(src: &ConfigSource, dev_mailbox: Option<DevMailbox>) -> Result<Self, ConfigError> {
        match (src.raw("EMPORIUM_SMTP_URL"), dev_mailbox) {
            (Some(url), _) => SmtpSettings::from_url(url)
                .map(Self::Smtp)
                .map_err(|m| ConfigError::new("EMPORIUM_SMTP_URL", m)),
            (None, Some(mailbox)) => Ok(Self::DevMailbox(mailbox)),
            (None, None) => Err(ConfigError::new(
                "EMPORIUM_SMTP_URL",
                "is required in production mode (e.g. smtp://mail:25 or smtps://user:pass@mail:465)",
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "smtp",
            Self::DevMailbox(_) => "dev-mailbox",
        }
    }
}

/// An SMTP relay, from a URL: `smtp://host[:port]` (plain, port 25), `smtp://host:587?tls=required`
/// (STARTTLS, or `tls=opportunistic`), `smtps://user:pass@host[:465]` (TLS from the start).
/// User and password are percent-decoded. The URL's password never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    url: String,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings").field("url", &self.redacted()).finish()
    }
}

impl SmtpSettings {
    /// Checks the URL now (scheme, host, `tls` parameter), so a typo stops the process at start.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err("must start with smtp:// or smtps://".into());
        }
        let host = url
            .split("://")
            .nth(1)
            .map(|rest| rest.rsplit('@').next().unwrap_or(rest))
            .and_then(|rest| rest.split(['/', '?', ':']).next())
            .unwrap_or("");
        if host.is_empty() {
            return Err("names no host".into());
        }
        if let Some((_, query)) = url.split_once('?') {
            for pair in query.split('&') {
                match pair.split_once('=') {
                    Some(("tls", "required" | "opportunistic")) => {}
                    _ => {
                        return Err(format!(
                            "unknown parameter {pair:?} (only tls=required or tls=opportunistic)"
                        ));
                    }
                }
            }
        }
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| format!("is not a usable SMTP URL: {e}"))?;
        Ok(Self { url: url.to_owned() })
    }

    /// The URL with its password masked, for logs.
    pub fn redacted(&self) -> String {
        platform::db::redact_url(&self.url)
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.url)
            .map(|b| b.timeout(Some(SMTP_TIMEOUT)).build())
            .map_err(|e| format!("{e}"))
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub from: &'a Mailbox,
    pub to: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// `<id@domain>`: stable per delivery, so a resend after a crash is recognisable downstream.
    pub message_id: &'a str,
}

/// Why a send failed. `permanent` when the server refused the message for good (SMTP 5xx, or a
/// message that cannot be built): retrying would not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

/// The sending half of a [`MailTransport`], built once (the SMTP transport keeps a connection pool).
#[derive(Clone)]
pub enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    DevMailbox(DevMailbox),
}

impl Sender {
    pub fn new(transport: &MailTransport) -> anyhow::Result<Self> {
        Ok(match transport {
            MailTransport::Smtp(settings) => Self::Smtp(
                settings
                    .transport()
                    .map_err(|e| anyhow::anyhow!("EMPORIUM_SMTP_URL: {e}"))?,
            ),
            MailTransport::DevMailbox(mailbox) => Self::DevMailbox(mailbox.clone()),
        })
    }

    pub async fn send(&self, m: &Outgoing<'_>) -> Result<(), SendError> {
        match self {
            Self::DevMailbox(mailbox) => {
                mailbox.deliver(m.to, m.subject, m.text);
                Ok(())
            }
            Self::Smtp(smtp) => {
                let message = build(m).map_err(|message| SendError {
                    message,
                    permanent: true,
                })?;
                smtp.send(message).await.map(|_| ()).map_err(|e| SendError {
                    message: format!("SMTP: {e}"),
                    permanent: e.is_permanent(),
                })
            }
        }
    }
}

/// A multipart/alternative message: the text part first, the HTML part preferred by clients.
pub fn build(m: &Outgoing<'_>) -> Result<Message, String> {
    let to: Mailbox =
        m.to.parse()
            .map_err(|e| format!("the recipient address is invalid: {e}"))?;
    Message::builder()
        .from(m.from.clone())
        .to(to)
        .subject(m.subject)
        .message_id(Some(m.message_id.to_owned()))
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(m.text.to_owned()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(m.html.to_owned()),
                ),
        )
        .map_err(|e| format!("the message cannot be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_are_checked_and_passwords_hidden() {
        for ok in [
            "smtp://localhost:2525",
            "smtp://mail.example",
            "smtps://user:p%40ss@mail.example:465",
            "smtp://mail.example:587?tls=required",
            "smtp://mail.example:587?tls=opportunistic",
        ] {
            SmtpSettings::from_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "http://mail.example",
            "mail.example:25",
            "smtp://",
            "smtp://mail.example?tls=maybe",
            "smtp://mail.example?foo=bar",
        ] {
            assert!(SmtpSettings::from_url(bad).is_err(), "{bad} accepted");
        }
        let s = SmtpSettings::from_url("smtps://user:s3cret@mail.example:465").expect("ok");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("user:***@mail.example"), "{shown}");
    }

    #[test]
    fn transport_follows_the_url_or_the_mode() {
        let none = ConfigSource::from_pairs(Vec::<(String, String)>::new()).expect("src");
        assert!(matches!(
            MailTransport::from_source(&none, Some(DevMailbox::new())),
            Ok(MailTransport::DevMailbox(_))
        ));
        let err = MailTransport::from_source(&none, None).expect_err("refused");
        assert_eq!(err.var, "EMPORIUM_SMTP_URL");
        let smtp = ConfigSource::from_pairs([("EMPORIUM_SMTP_URL", "smtp://127.0.0.1:2525")]).expect("src");
        assert_eq!(
            MailTransport::from_source(&smtp, Some(DevMailbox::new()))
                .expect("ok")
                .name(),
            "smtp"
        );
        let bad = ConfigSource::from_pairs([("EMPORIUM_SMTP_URL", "mail:25")]).expect("src");
        assert_eq!(
            MailTransport::from_source(&bad, None).expect_err("refused").var,
            "EMPORIUM_SMTP_URL"
        );
    }

    #[test]
    fn messages_are_multipart_alternative_with_our_message_id() {
        let from: Mailbox = "Emporium <no-reply@emporium.local>".parse().expect("from");
        let m = Outgoing {
            from: &from,
            to: "ann@example.com",
            subject: "Order 1 received",
            text: "plain",
            html: "<p>html</p>",
            message_id: "<abc@emporium.local>",
        };
        let raw = String::from_utf8(build(&m).expect("build").formatted()).expect("utf8");
        assert!(raw.contains("Message-ID: <abc@emporium.local>"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        assert!(raw.contains("To: ann@example.com"));
        let bad = Outgoing {
            to: "not an address",
            ..m
        };
        assert!(build(&bad).is_err());
    }
}
