//! Where identity's messages go until the notifications context delivers them.

use platform::dev_mailbox::DevMailbox;

use crate::service::Mailer;

/// Embedded mode: keep the message in the dev mailbox and say so in the log.
pub struct DevMailboxMailer(pub DevMailbox);

impl Mailer for DevMailboxMailer {
    fn send(&self, to: &str, subject: &str, body: &str) {
        self.0.deliver(to, subject, body);
        // Embedded (development) mode only: the message, token included, is in the log so a
        // newcomer without SMTP can finish sign-up. Production never uses this mailer.
        tracing::info!(%to, %subject, %body, "dev mailbox: message kept at GET /api/v1/dev/mailbox");
    }
}

/// Production mode before the notifications context exists: messages cannot be delivered.
/// The log says so, without the body (it holds a secret token).
pub struct UndeliverableMailer;

impl Mailer for UndeliverableMailer {
    fn send(&self, to: &str, subject: &str, _body: &str) {
        tracing::warn!(%to, %subject, "message not delivered: no mail transport is configured in production mode yet");
    }
}
