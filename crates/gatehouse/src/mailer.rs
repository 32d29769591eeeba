//! Sends mail over SMTP with `lettre` (`GATEHOUSE_SMTP_URL`, `GATEHOUSE_MAIL_FROM`):
//! plain-text UTF-8 mails, one connection per mail, within the webhook timeout. Used by the
//! outbox's dispatcher and by `gatehouse mail test`. The server's certificate (STARTTLS or
//! `smtps://`) is checked against the Mozilla roots compiled in, and the CAs of
//! `GATEHOUSE_SMTP_CA_FILE` when set ([`CaCertificates`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use secrecy::{ExposeSecret, SecretString};

/// The CA certificates of `GATEHOUSE_SMTP_CA_FILE`, read and checked once, at start-up: the
/// mailer trusts them for the SMTP server's certificate besides the Mozilla roots.
#[derive(Clone)]
pub struct CaCertificates {
    path: PathBuf,
    certificates: Vec<Certificate>,
}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCertificates")
            .field("path", &self.path)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

impl CaCertificates {
    const BEGIN: &'static str = "-----BEGIN CERTIFICATE-----";
    const END: &'static str = "-----END CERTIFICATE-----";

    /// Reads the PEM file at `path`: every `CERTIFICATE` block in it (other blocks, such
    /// as a key, and text around them are passed over), each one that rustls takes as a
    /// trust anchor.
    ///
    /// # Errors
    /// When the file cannot be read, holds no certificate, or one that is not usable; the
    /// message names the path.
    pub fn read(path: &Path) -> Result<Self, String> {
        if path.as_os_str().is_empty() {
            return Err(
                "is empty: set it to the path of a PEM file of CA certificates, or unset it"
                    .to_owned(),
            );
        }
        let shown = path.display();
        let bytes =
            std::fs::read(path).map_err(|e| format!("{shown}: cannot read the file: {e}"))?;
        let text = String::from_utf8_lossy(&bytes);
        let mut certificates = Vec::new();
        let mut rest = text.as_ref();
        while let Some(start) = rest.find(Self::BEGIN) {
            let number = certificates.len() + 1;
            let block = &rest[start..];
            let Some(end) = block.find(Self::END).map(|end| end + Self::END.len()) else {
                return Err(format!(
                    "{shown}: certificate {number} has no {} line",
                    Self::END
                ));
            };
            let certificate = Certificate::from_pem(&block.as_bytes()[..end])
                .and_then(|certificate| {
                    // What the mailer does with it, alone: rustls parses it as a root.
                    TlsParameters::builder("localhost".to_owned())
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(certificate.clone())
                        .build()
                        .map(|_| certificate)
                })
                .map_err(|e| {
                    // rustls's words are a server's ("invalid peer certificate: …").
                    let text = describe(&e);
                    let text = text
                        .trim_start_matches("tls error: ")
                        .trim_start_matches("invalid peer certificate: ");
                    format!("{shown}: certificate {number} is not a usable CA certificate ({text})")
                })?;
            certificates.push(certificate);
            rest = &block[end..];
        }
        if certificates.is_empty() {
            return Err(format!(
                "{shown}: holds no certificate (expected PEM: {} … {} blocks)",
                Self::BEGIN,
                Self::END
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            certificates,
        })
    }

    /// TLS parameters for `host` trusting these CAs besides the default roots.
    fn parameters(&self, host: &str) -> anyhow::Result<TlsParameters> {
        self.certificates
            .iter()
            .fold(
                TlsParameters::builder(host.to_owned()),
                |builder, certificate| builder.add_root_certificate(certificate.clone()),
            )
            .build()
            .map_err(|e| {
                anyhow::anyhow!(
                    "GATEHOUSE_SMTP_CA_FILE {} cannot be used: {}",
                    self.path.display(),
                    describe(&e)
                )
            })
    }
}

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
    /// The mailer of `url` sending as `from`, each exchange bounded by `timeout`; with
    /// `cas`, the server's certificate may also be signed by one of them.
    ///
    /// # Errors
    /// A URL or sender lettre cannot use (the message never repeats the URL).
    pub fn new(
        url: &SecretString,
        from: &str,
        timeout: Duration,
        cas: Option<&CaCertificates>,
    ) -> anyhow::Result<Self> {
        let unusable = || anyhow::anyhow!("GATEHOUSE_SMTP_URL cannot be used by the mailer");
        let parsed = url::Url::parse(url.expose_secret().trim()).map_err(|_| unusable())?;
        let host = parsed.host_str().unwrap_or_default().to_owned();
        // lettre's own reading of the URL: host, port, credentials, EHLO name, and TLS
        // with the default roots…
        let mut builder = SmtpTransport::from_url(url.expose_secret().trim())
            .map_err(|_| unusable())?
            .timeout(Some(timeout));
        // …whose TLS parameters, with a CA file, are replaced by the same ones trusting
        // its CAs too, in the mode the URL asks for (as lettre's `from_url` reads it).
        if let Some(cas) = cas {
            let tls = parsed
                .query_pairs()
                .find(|(key, _)| key == "tls")
                .map(|(_, value)| value.into_owned());
            builder = match (parsed.scheme(), tls.as_deref()) {
                ("smtp", Some("required")) => builder.tls(Tls::Required(cas.parameters(&host)?)),
                ("smtp", Some("opportunistic")) => {
                    builder.tls(Tls::Opportunistic(cas.parameters(&host)?))
                }
                ("smtps", _) => builder.tls(Tls::Wrapper(cas.parameters(&host)?)),
                _ => {
                    tracing::warn!(
                        host = %host,
                        "GATEHOUSE_SMTP_CA_FILE is set but GATEHOUSE_SMTP_URL asks for no TLS \
                         (smtp:// without ?tls=): the CA file is not used"
                    );
                    builder
                }
            };
        }
        let transport = builder.build();
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
                let mut text = describe(&e);
                if let Some(hint) = certificate_hint(&text) {
                    text.push_str(": ");
                    text.push_str(hint);
                }
                Err((code, text))
            }
        }
    }
}

/// What an operator can do about a refused server certificate (rustls's words in `text`).
fn certificate_hint(text: &str) -> Option<&'static str> {
    if text.contains("UnknownIssuer") {
        Some(
            "the server's certificate is not signed by a CA the mailer trusts (the Mozilla \
             roots, and those of GATEHOUSE_SMTP_CA_FILE when set)",
        )
    } else if text.contains("invalid peer certificate") {
        Some(
            "the server's certificate was refused (it must be valid now and name the host \
             of GATEHOUSE_SMTP_URL)",
        )
    } else {
        None
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
