//! How out-of-band codes reach people: the [`CodeSender`] trait, email over
//! SMTP ([`SmtpSender`]), and a file for development ([`FileSender`]).
//!
//! There is no SMS sender yet: an SMS gateway plugs in behind the same trait,
//! taking [`Destination::Phone`] and [`CodeMessage::text`].

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
            .subject(message.subject_line())
            .header(ContentType::TEXT_PLAIN)
            .body(message.text().as_str().to_string())
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
        tracing::info!(
            path = %self.path.display(),
            destination = destination.kind(),
            purpose = %one_line(message.purpose()),
            "out-of-band code written to the development code file"
        );
        Ok(())
    }
}
