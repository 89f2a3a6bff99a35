//! How out-of-band codes, and notices such as alerts, reach people: the
//! [`CodeSender`] trait, email over SMTP ([`SmtpSender`]), and a file for
//! development ([`FileSender`]).
//!
//! An SMS gateway plugs in behind the same trait (the HSP's is an HTTP
//! gateway whose request is configuration), taking [`Destination::Phone`].

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use zeroize::Zeroizing;

use crate::oob::{one_line, CodeMessage, Destination};

/// Why a code was not delivered.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// This sender cannot reach this kind of destination (an SMS number
    /// given to the email sender).
    #[error("this sender cannot deliver to a {destination} destination")]
    Unsupported {
        /// "email" or "phone".
        destination: &'static str,
    },
    /// The destination or the sender's own address does not parse.
    #[error("invalid address: {0}")]
    Address(String),
    /// The sender's settings are unusable.
    #[error("sender settings: {0}")]
    Config(String),
    /// The mail server refused the message or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// An HTTP gateway (SMS) refused the message or could not be reached.
    #[error("gateway: {0}")]
    Gateway(String),
    /// Writing the development code file failed.
    #[error("code file: {0}")]
    Io(#[from] std::io::Error),
}

/// Delivers codes. Implementations must not log the code.
#[async_trait]
pub trait CodeSender: Send + Sync {
    /// Whether this sender can deliver to `destination` at all;
    /// [`OobCodes::send`](crate::OobCodes::send) asks before it counts a
    /// send or replaces the live code.
    fn reaches(&self, destination: &Destination) -> bool {
        let _ = destination;
        true
    }

    /// Delivers `message` to `destination`.
    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError>;

    /// Delivers `notice` (an alert, a break-glass access) to `destination`.
    /// A sender that carries codes only refuses it.
    async fn send_notice(
        &self,
        destination: &Destination,
        notice: &Notice,
    ) -> Result<(), SendError> {
        let _ = notice;
        Err(SendError::Unsupported {
            destination: destination.kind(),
        })
    }
}

/// A message for a person that is not a code: a subject and a short plain
/// text, each one line or a few (an SMS gateway sends the subject and the
/// text together). It names patients by pseudonym only: mail and SMS cross
/// networks the hospital does not control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The subject line (control characters become spaces when sent).
    pub subject: String,
    /// The body.
    pub text: String,
}

impl Notice {
    /// The notice as one short text: the subject, then the body.
    pub fn short_text(&self) -> String {
        format!("{}: {}", one_line(&self.subject), self.text.trim())
    }
}

/// Several senders as one: each destination goes to the first sender that
/// reaches it (the mail server for addresses, the SMS gateway for numbers).
pub struct Senders(Vec<std::sync::Arc<dyn CodeSender>>);

impl Senders {
    /// The senders, in the order they are asked.
    pub fn new(senders: Vec<std::sync::Arc<dyn CodeSender>>) -> Self {
        Self(senders)
    }

    fn for_destination(&self, destination: &Destination) -> Result<&dyn CodeSender, SendError> {
        self.0
            .iter()
            .find(|s| s.reaches(destination))
            .map(|s| &**s)
            .ok_or(SendError::Unsupported {
                destination: destination.kind(),
            })
    }
}

impl fmt::Debug for Senders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Senders").field(&self.0.len()).finish()
    }
}

#[async_trait]
impl CodeSender for Senders {
    fn reaches(&self, destination: &Destination) -> bool {
        self.0.iter().any(|s| s.reaches(destination))
    }

    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError> {
        self.for_destination(destination)?
            .send_code(destination, message)
            .await
    }

    async fn send_notice(
        &self,
        destination: &Destination,
        notice: &Notice,
    ) -> Result<(), SendError> {
        self.for_destination(destination)?
            .send_notice(destination, notice)
            .await
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text, for a relay on the same host or a trusted segment only:
    /// the code crosses the network readable. No credentials are sent this way.
    None,
    /// STARTTLS on the submission port (587), required: a server that does
    /// not offer it, or whose certificate does not verify, gets nothing.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

/// A login at the mail server (AUTH PLAIN or LOGIN, over TLS only).
#[derive(Clone)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Where and how [`SmtpSender`] submits mail.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// The mail server's host name (also the name its certificate must carry).
    pub host: String,
    /// 25 for a local relay, 587 for STARTTLS, 465 for implicit TLS.
    pub port: u16,
    /// The `From` address, optionally with a name: `vitalgate <no-reply@hospital.example>`.
    pub from: String,
    /// A login, if the server wants one.
    pub credentials: Option<SmtpCredentials>,
    /// Connection protection.
    pub tls: SmtpTls,
    /// PEM certificates trusted besides the system's roots (a hospital's
    /// internal CA).
    pub extra_roots_pem: Option<Vec<u8>>,
    /// Seconds for each SMTP command before giving up.
    pub timeout_secs: u64,
}

impl SmtpConfig {
    /// A relay on `host`:25 without TLS or login (a local Postfix, say).
    pub fn local_relay(host: &str, port: u16, from: &str) -> Self {
        Self {
            host: host.to_string(),
            port,
            from: from.to_string(),
            credentials: None,
            tls: SmtpTls::None,
            extra_roots_pem: None,
            timeout_secs: 30,
        }
    }
}

/// Sends codes as plain-text email through an SMTP server (lettre). Refuses
/// phone numbers.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for `config`. Refuses credentials without TLS, and a `from`
    /// that is not an address. Connects only when it sends.
    pub fn new(config: SmtpConfig) -> Result<Self, SendError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| SendError::Address(format!("from {:?}: {e}", config.from)))?;
        let tls_parameters = || -> Result<TlsParameters, SendError> {
            let mut builder = TlsParameters::builder(config.host.clone());
            if let Some(pem) = &config.extra_roots_pem {
                let roots = Certificate::from_pem(pem)
                    .map_err(|e| SendError::Config(format!("extra roots: {e}")))?;
                builder = builder.add_root_certificate(roots);
            }
            builder
                .build_rustls()
                .map_err(|e| SendError::Config(format!("TLS: {e}")))
        };
        let tls = match config.tls {
            SmtpTls::None => {
                if config.credentials.is_some() {
                    return Err(SendError::Config(
                        "SMTP credentials are sent over TLS only".to_string(),
                    ));
                }
                if !is_loopback(&config.host) {
                    tracing::warn!(
                        host = %config.host,
                        "out-of-band codes go to the SMTP server without TLS"
                    );
                }
                Tls::None
            }
            SmtpTls::StartTls => Tls::Required(tls_parameters()?),
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_secs)));
        if let Some(c) = config.credentials {
            builder = builder.credentials(Credentials::new(
                c.username,
                c.password.as_str().to_string(),
            ));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[async_trait]
impl CodeSender for SmtpSender {
    fn reaches(&self, destination: &Destination) -> bool {
        matches!(destination, Destination::Email(_))
    }

    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError> {
        self.send_mail(
            destination,
            message.subject_line(),
            message.text().as_str().to_string(),
        )
        .await
    }

    async fn send_notice(
        &self,
        destination: &Destination,
        notice: &Notice,
    ) -> Result<(), SendError> {
        self.send_mail(destination, one_line(&notice.subject), notice.text.clone())
            .await
    }
}

impl SmtpSender {
    /// One plain-text message to an email destination.
    async fn send_mail(
        &self,
        destination: &Destination,
        subject: String,
        body: String,
    ) -> Result<(), SendError> {
        let Destination::Email(address) = destination else {
            return Err(SendError::Unsupported {
                destination: destination.kind(),
            });
        };
        let to: Mailbox = address
            .parse()
            .map_err(|e| SendError::Address(format!("to: {e}")))?;
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| SendError::Address(e.to_string()))?;
        self.transport
            .send(email)
            .await
            .map_err(|e| SendError::Smtp(e.to_string()))?;
        Ok(())
    }
}

/// Appends each code as a line to a file, for `vitalgate dev` and tests:
/// **development only**, since the file holds live codes (it is created
/// owner-only). Takes email addresses and phone numbers alike.
///
/// A line reads `<email|phone>\t<destination>\t<purpose>\t<code>\texpires_at=<unix seconds>`.
/// Each write is logged at info with the file's path, never the code.
#[derive(Debug)]
pub struct FileSender {
    path: PathBuf,
}

impl FileSender {
    /// A sender that appends to `path` (created on the first code).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file the codes go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, owner-only.
    async fn append(&self, line: Zeroizing<String>) -> Result<(), SendError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut options = std::fs::OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            // One write of one short line: appends from several tasks or
            // processes do not interleave.
            options.open(&path)?.write_all(line.as_bytes())
        })
        .await
        .map_err(|e| SendError::Io(std::io::Error::other(e)))??;
        Ok(())
    }
}

#[async_trait]
impl CodeSender for FileSender {
    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError> {
        let line = Zeroizing::new(format!(
            "{}\t{}\t{}\t{}\texpires_at={}\n",
            destination.kind(),
            one_line(destination.address()),
            one_line(message.purpose()),
            message.code(),
            message.expires_at(),
        ));
        self.append(line).await?;
        tracing::info!(
            path = %self.path.display(),
            destination = destination.kind(),
            purpose = %one_line(message.purpose()),
            "out-of-band code written to the development code file"
        );
        Ok(())
    }

    /// A line `notice\t<email|phone>\t<destination>\t<subject>: <text>`.
    async fn send_notice(
        &self,
        destination: &Destination,
        notice: &Notice,
    ) -> Result<(), SendError> {
        let line = Zeroizing::new(format!(
            "notice\t{}\t{}\t{}\n",
            destination.kind(),
            one_line(destination.address()),
            one_line(&notice.short_text()),
        ));
        self.append(line).await?;
        tracing::info!(
            path = %self.path.display(),
            destination = destination.kind(),
            "a notice written to the development code file"
        );
        Ok(())
    }
}
