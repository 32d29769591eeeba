//! Sends mail over SMTP with `lettre` (`GATEHOUSE_SMTP_URL`, `GATEHOUSE_MAIL_FROM`):
//! plain-text UTF-8 mails, one connection per mail, within the webhook timeout. Used by the
//! outbox's dispatcher and by `gatehouse mail test`.

use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{Message, SmtpTransport, Transport};
use secrecy::{ExposeSecret, SecretString};

/// A configured mailer.
#[derive(Clone)]
pub struct Mailer {
    transport: SmtpTransport,
    from: Mailbox,
    /// The server's host, for messages (never the credentials).
    host: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// How a send went: the SMTP reply's code, or why it failed (with the code when the
/// server answered).
pub type Sent = Result<u16, (Option<u16>, String)>;

impl Mailer {
    /// The mailer of `url` sending as `from`, each exchange bounded by `timeout`.
    ///
    /// # Errors
    /// A URL or sender lettre cannot use (the message never repeats the URL).
    pub fn new(url: &SecretString, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let host = url::Url::parse(url.expose_secret().trim())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let transport = SmtpTransport::from_url(url.expose_secret().trim())
            .map_err(|_| anyhow::anyhow!("GATEHOUSE_SMTP_URL cannot be used by the mailer"))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse::<Mailbox>()
            .context("GATEHOUSE_MAIL_FROM is not a mail address")?;
        Ok(Self {
            transport,
            from,
            host,
        })
    }

    /// The SMTP server's host.
    #[must_use]
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends one plain-text mail (blocking).
    pub fn send(&self, to: &str, subject: &str, body: &str) -> Sent {
        let to = to
            .parse::<Mailbox>()
            .map_err(|e| (None, format!("the recipient is not a mail address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| (None, format!("the mail could not be built: {e}")))?;
        match self.transport.send(&message) {
            Ok(response) => Ok(u16::from(response.code())),
            Err(e) => {
                let code = e.status().map(u16::from);
                Err((code, describe(&e)))
            }
        }
    }
}

/// An SMTP error in words, with its causes, bounded.
fn describe(error: &lettre::transport::smtp::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.chars().take(500).collect()
}
