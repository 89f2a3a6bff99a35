//! SMS through the hospital's HTTP gateway (`[hsp.sms]`): a POST whose body
//! is a template from configuration, since every gateway (a hospital's
//! own, a carrier's, an aggregator's) wants its own request. `{to}` and
//! `{text}` in the template are replaced by the number and the message,
//! escaped for the body's content type: as JSON string contents for
//! `application/json`, percent-encoded for `application/x-www-form-urlencoded`.
//! An optional header value (a bearer token, say) is read from a file.
//!
//! The gateway carries sign-in codes and notices alike, to phone numbers in
//! E.164 form; it refuses email addresses so that a combined sender picks
//! the mail server for those.

use std::path::PathBuf;

use async_trait::async_trait;
use axum::http::{header, HeaderName, HeaderValue};
use hyper::body::Bytes;
use serde::Deserialize;
use vitalgate_otp::{CodeMessage, CodeSender, Destination, Notice, SendError};
use zeroize::Zeroizing;

use crate::outbound::Endpoint;

/// The gateway as configured (`[hsp.sms]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// `https://…`, or `http://` to a gateway on this host's loopback.
    pub url: String,
    /// The request body, with `{to}` and `{text}` in it.
    pub body: String,
    /// The body's content type.
    #[serde(default = "json")]
    pub content_type: String,
    /// A header the gateway wants (`Authorization`), its value in
    /// `header_file` (a token stays out of the configuration file).
    #[serde(default)]
    pub header: Option<String>,
    /// The file holding that header's value.
    #[serde(default)]
    pub header_file: Option<PathBuf>,
    /// PEM certificate authorities for an `https` gateway; the system's
    /// roots when absent.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn json() -> String {
    "application/json".into()
}

/// How the template's values are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    Json,
    Form,
}

/// The gateway, loaded: its header read, its TLS set up.
pub struct SmsGateway {
    endpoint: Endpoint,
    body: String,
    content_type: HeaderValue,
    escape: Escape,
    header: Option<(HeaderName, Zeroizing<String>)>,
}

impl std::fmt::Debug for SmsGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsGateway")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl SmsGateway {
    /// Reads the header file and sets up TLS; one line naming what is wrong
    /// otherwise.
    pub fn load(config: &SmsConfig) -> Result<Self, String> {
        let fail = |why: String| format!("[hsp.sms]: {why}");
        let endpoint = Endpoint::new(&config.url, config.ca_file.as_deref()).map_err(fail)?;
        let escape = match config.content_type.as_str() {
            "application/json" => Escape::Json,
            "application/x-www-form-urlencoded" => Escape::Form,
            other => {
                return Err(fail(format!(
                    "content_type {other:?} (known: application/json, \
                     application/x-www-form-urlencoded)"
                )))
            }
        };
        if !config.body.contains("{to}") || !config.body.contains("{text}") {
            return Err(fail("the body template must hold {to} and {text}".into()));
        }
        let header = match (&config.header, &config.header_file) {
            (Some(name), Some(file)) => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|e| fail(format!("header {name:?}: {e}")))?;
                let value = std::fs::read_to_string(file)
                    .map_err(|e| fail(format!("the header file {}: {e}", file.display())))?;
                let value = Zeroizing::new(value.trim().to_string());
                HeaderValue::from_str(&value).map_err(|_| {
                    fail(format!(
                        "the header file {}: not a header value",
                        file.display()
                    ))
                })?;
                Some((name, value))
            }
            (None, None) => None,
            _ => return Err(fail("header and header_file go together".into())),
        };
        Ok(Self {
            endpoint,
            body: config.body.clone(),
            content_type: HeaderValue::from_str(&config.content_type)
                .map_err(|e| fail(e.to_string()))?,
            escape,
            header,
        })
    }

    /// The request body for `text` to `to`.
    fn body_for(&self, to: &str, text: &str) -> String {
        let escape = |value: &str| match self.escape {
            Escape::Json => {
                let quoted = serde_json::Value::from(value).to_string();
                quoted[1..quoted.len() - 1].to_string()
            }
            Escape::Form => form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        };
        // One pass over the template, so a number or message that holds
        // `{text}` is not replaced again.
        let mut body = String::with_capacity(self.body.len() + text.len());
        let mut rest = self.body.as_str();
        while let Some(open) = rest.find('{') {
            body.push_str(&rest[..open]);
            let tail = &rest[open..];
            if let Some(after) = tail.strip_prefix("{to}") {
                body.push_str(&escape(to));
                rest = after;
            } else if let Some(after) = tail.strip_prefix("{text}") {
                body.push_str(&escape(text));
                rest = after;
            } else {
                body.push('{');
                rest = &tail[1..];
            }
        }
        body.push_str(rest);
        body
    }

    async fn send_text(&self, destination: &Destination, text: &str) -> Result<(), SendError> {
        let Destination::Phone(number) = destination else {
            return Err(SendError::Unsupported {
                destination: destination.kind(),
            });
        };
        if !is_e164(number) {
            return Err(SendError::Address(
                "a phone number in E.164 form (+ and up to 15 digits)".into(),
            ));
        }
        let body = Zeroizing::new(self.body_for(number, text));
        let mut headers = vec![(header::CONTENT_TYPE, self.content_type.clone())];
        if let Some((name, value)) = &self.header {
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| SendError::Config("the header value".into()))?;
            value.set_sensitive(true);
            headers.push((name.clone(), value));
        }
        self.endpoint
            .post(&headers, Bytes::copy_from_slice(body.as_bytes()))
            .await
            .map_err(SendError::Gateway)
    }
}

/// `+` and 8 to 15 digits, the first not 0.
pub(crate) fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[async_trait]
impl CodeSender for SmsGateway {
    fn reaches(&self, destination: &Destination) -> bool {
        matches!(destination, Destination::Phone(_))
    }

    async fn send_code(
        &self,
        destination: &Destination,
        message: &CodeMessage,
    ) -> Result<(), SendError> {
        self.send_text(destination, &message.text()).await
    }

    async fn send_notice(
        &self,
        destination: &Destination,
        notice: &Notice,
    ) -> Result<(), SendError> {
        self.send_text(destination, &notice.short_text()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateway(body: &str, content_type: &str) -> SmsGateway {
        SmsGateway::load(&SmsConfig {
            url: "http://127.0.0.1:9/send".into(),
            body: body.into(),
            content_type: content_type.into(),
            header: None,
            header_file: None,
            ca_file: None,
        })
        .expect("gateway")
    }

    #[test]
    fn the_template_is_filled_once_and_escaped_for_its_content_type() {
        let json = gateway(
            r#"{"to":"{to}","message":"{text}","x":"{other}"}"#,
            "application/json",
        );
        let body = json.body_for("+441632960001", "SpO2 \"low\"\n{to}");
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(parsed["to"], "+441632960001");
        assert_eq!(parsed["message"], "SpO2 \"low\"\n{to}", "filled once");
        assert_eq!(parsed["x"], "{other}");

        let form = gateway("To={to}&Body={text}", "application/x-www-form-urlencoded");
        assert_eq!(
            form.body_for("+441632960001", "a&b=c d"),
            "To=%2B441632960001&Body=a%26b%3Dc+d"
        );
    }

    #[test]
    fn a_bad_gateway_is_one_line_and_numbers_are_e164() {
        let refused = |config: SmsConfig| SmsGateway::load(&config).expect_err("refused");
        let base = SmsConfig {
            url: "http://127.0.0.1:9/send".into(),
            body: "{to} {text}".into(),
            content_type: "application/json".into(),
            header: None,
            header_file: None,
            ca_file: None,
        };
        let plain = refused(SmsConfig {
            url: "http://sms.example/send".into(),
            ..base.clone()
        });
        assert!(
            plain.starts_with("[hsp.sms]: ") && plain.contains("https://"),
            "{plain}"
        );
        let no_text = refused(SmsConfig {
            body: "{to}".into(),
            ..base.clone()
        });
        assert!(no_text.contains("{to} and {text}"), "{no_text}");
        let xml = refused(SmsConfig {
            content_type: "text/xml".into(),
            ..base.clone()
        });
        assert!(xml.contains("content_type \"text/xml\""), "{xml}");
        let lone = refused(SmsConfig {
            header: Some("Authorization".into()),
            ..base
        });
        assert!(lone.contains("go together"), "{lone}");

        assert!(is_e164("+441632960001"));
        for bad in [
            "441632960001",
            "+0441632960",
            "+44 1632 960001",
            "+1234567",
            "",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
