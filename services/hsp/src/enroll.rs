//! Enrolling and recovering factors (threat 23).
//!
//! An administrator issues a single-use, expiring factor token for one subject
//! and one purpose; only its hash is stored and every issue and use is audited.
//! Whoever logs in first therefore cannot set up someone's TOTP or password:
//! they need the token the administrator handed to that person. A token also
//! serves recovery (a forgotten password, a lost phone, a replaced wearable):
//! the new factor replaces the old one, whose failure counts start again.
//! A password may also be changed by its owner with the ticket of a login that
//! proved the current password a few minutes ago.

use tonic::{Request, Response, Status};
use vitalgate_core::credential::{Credential, Role, RoleSet};
use vitalgate_core::factor::FactorKind;
use vitalgate_core::provider::{AwsLc, CryptoProvider};
use vitalgate_core::UnixTime;
use vitalgate_proto::v1::{self, FactorPurpose};
use vitalgate_rpc::{invalid, store_status};
use vitalgate_store::{FactorToken, StoreError};

use crate::factors::{contact_label, encode_destination, otp_label, BIOMETRIC_SCOPE, OTP_SCOPE};
use crate::guesses::ACCOUNT_SCOPE;
use crate::live::CloseReason;
use crate::login::PASSWORD_CHANGE_WINDOW_SECS;
use crate::records::checked_pseudonym;
use crate::Hsp;

/// Default and longest lifetimes of a factor token.
const DEFAULT_TOKEN_SECS: u64 = 24 * 3600;
const MAX_TOKEN_SECS: u64 = 7 * 24 * 3600;

pub(crate) fn factor_token_hash(token: &str) -> [u8; 32] {
    AwsLc::sha256(&[b"vitalgate/1 factor token", token.as_bytes()])
}

pub(crate) fn purpose_name(purpose: FactorPurpose) -> Option<&'static str> {
    match purpose {
        FactorPurpose::Password => Some("password"),
        FactorPurpose::Otp => Some("otp"),
        FactorPurpose::Biometric => Some("biometric"),
        FactorPurpose::RebindDevice => Some("rebind-device"),
        FactorPurpose::Unspecified => None,
    }
}

/// How a password registration is authorised.
enum Authorization {
    Token(String),
    Ticket,
}

impl Hsp {
    /// Checks a factor token for `subject` and `purpose` without using it.
    async fn usable_token(
        &self,
        token: &str,
        subject: &str,
        purpose: &str,
    ) -> Result<FactorToken, Status> {
        let found = self
            .store()
            .factor_token(&factor_token_hash(token), self.now())
            .await;
        self.matching(found, subject, purpose).await
    }

    /// Uses a factor token for `subject` and `purpose`: once.
    async fn redeem_token(
        &self,
        token: &str,
        subject: &str,
        purpose: &str,
    ) -> Result<FactorToken, Status> {
        // Look first, so a token for another subject or purpose is not burnt.
        self.usable_token(token, subject, purpose).await?;
        let redeemed = self
            .store()
            .redeem_factor_token(&factor_token_hash(token), self.now())
            .await;
        self.matching(redeemed, subject, purpose).await
    }

    async fn matching(
        &self,
        found: Result<FactorToken, StoreError>,
        subject: &str,
        purpose: &str,
    ) -> Result<FactorToken, Status> {
        let refused = match found {
            Ok(token) if token.subject == subject && token.purpose == purpose => return Ok(token),
            Ok(_) => "the token is for another subject or purpose".to_string(),
            Err(
                e @ (StoreError::TokenUnknown | StoreError::TokenUsed | StoreError::TokenExpired),
            ) => e.to_string(),
            Err(e) => return Err(store_status(&e)),
        };
        self.audit("factor.token.refused", subject, purpose, &refused)
            .await;
        Err(Status::permission_denied(format!(
            "factor token: {refused}"
        )))
    }

    fn authorization(
        &self,
        subject: &str,
        factor_token: Option<String>,
        login_ticket: Option<Vec<u8>>,
    ) -> Result<Authorization, Status> {
        match (factor_token, login_ticket) {
            (Some(token), None) => Ok(Authorization::Token(token)),
            (None, Some(ticket)) => {
                let ticket = self
                    .ticket(&ticket)
                    .ok_or_else(|| Status::unauthenticated("unknown or expired login ticket"))?;
                let recent =
                    self.now().saturating_sub(ticket.issued_at) <= PASSWORD_CHANGE_WINDOW_SECS;
                if ticket.subject != subject
                    || !ticket.factors.contains(FactorKind::Password)
                    || !recent
                {
                    return Err(Status::permission_denied(
                        "a password change needs a login with the current password in the last 5 minutes",
                    ));
                }
                Ok(Authorization::Ticket)
            }
            _ => Err(invalid(
                "authorization",
                "a factor token or a login ticket is needed",
            )),
        }
    }

    pub(crate) async fn issue_factor_token(
        &self,
        request: Request<v1::IssueFactorTokenRequest>,
    ) -> Result<Response<v1::IssueFactorTokenResponse>, Status> {
        self.admin().check(&request)?;
        self.issue_factor_token_as("admin", request.into_inner())
            .await
            .map(Response::new)
    }

    /// Issues a factor token on behalf of `issued_by` (the gRPC's bearer,
    /// `admin`, or an administrator signed in to the portal), who must
    /// already be checked: only its hash is kept, and the issue is audited
    /// under that name.
    pub(crate) async fn issue_factor_token_as(
        &self,
        issued_by: &str,
        request: v1::IssueFactorTokenRequest,
    ) -> Result<v1::IssueFactorTokenResponse, Status> {
        let subject = checked_pseudonym(&request.subject)?;
        let purpose = FactorPurpose::try_from(request.purpose)
            .ok()
            .and_then(purpose_name)
            .ok_or_else(|| invalid("purpose", "password, otp, biometric or rebind-device"))?;
        let ttl = match u64::from(request.ttl_secs) {
            0 => DEFAULT_TOKEN_SECS,
            ttl if ttl <= MAX_TOKEN_SECS => ttl,
            _ => return Err(invalid("ttl_secs", "at most 7 days")),
        };
        let token = vitalgate_rpc::admin::random_hex();
        let now = self.now();
        let expires_at = now + ttl;
        self.store()
            .create_factor_token(&FactorToken {
                token_hash: factor_token_hash(&token),
                subject: subject.to_string(),
                purpose: purpose.to_string(),
                issued_by: issued_by.into(),
                created_at: now,
                expires_at,
            })
            .await
            .map_err(|e| store_status(&e))?;
        self.audit(
            "factor.token.issued",
            issued_by,
            subject,
            &format!("{purpose} until {expires_at}"),
        )
        .await;
        Ok(v1::IssueFactorTokenResponse {
            token,
            expires_at: expires_at as i64,
        })
    }

    pub(crate) async fn start_password_registration(
        &self,
        request: v1::StartPasswordRegistrationRequest,
    ) -> Result<v1::StartPasswordRegistrationResponse, Status> {
        use v1::start_password_registration_request::Authorization as A;
        let subject = checked_pseudonym(&request.subject)?;
        let (token, ticket) = match request.authorization {
            Some(A::FactorToken(t)) => (Some(t), None),
            Some(A::LoginTicket(t)) => (None, Some(t)),
            None => (None, None),
        };
        if let Authorization::Token(token) = self.authorization(subject, token, ticket)? {
            self.usable_token(&token, subject, "password").await?;
        }
        let response = vitalgate_password::registration_response(
            &self.factors().opaque,
            subject,
            &request.request,
        )
        .map_err(|e| invalid("request", &e.to_string()))?;
        Ok(v1::StartPasswordRegistrationResponse { response })
    }

    pub(crate) async fn finish_password_registration(
        &self,
        request: v1::FinishPasswordRegistrationRequest,
    ) -> Result<v1::FinishPasswordRegistrationResponse, Status> {
        use v1::finish_password_registration_request::Authorization as A;
        let subject = checked_pseudonym(&request.subject)?;
        let record = vitalgate_password::registration_record(&request.upload)
            .map_err(|e| invalid("upload", &e.to_string()))?;
        let (token, ticket) = match request.authorization {
            Some(A::FactorToken(t)) => (Some(t), None),
            Some(A::LoginTicket(t)) => (None, Some(t)),
            None => (None, None),
        };
        let how = match self.authorization(subject, token, ticket)? {
            Authorization::Token(token) => {
                self.redeem_token(&token, subject, "password").await?;
                "with a factor token"
            }
            Authorization::Ticket => "changed by its owner",
        };
        let store = &**self.store();
        let had = store
            .factor(subject, FactorKind::Password as u8)
            .await
            .map_err(|e| store_status(&e))?
            .is_some();
        store
            .put_factor(subject, FactorKind::Password as u8, &record, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        store
            .clear_attempts(ACCOUNT_SCOPE, subject)
            .await
            .map_err(|e| store_status(&e))?;
        let kind = if had {
            "factor.password.replaced"
        } else {
            "factor.password.enrolled"
        };
        self.audit(kind, subject, "password", how).await;
        Ok(v1::FinishPasswordRegistrationResponse {})
    }

    pub(crate) async fn enroll_otp(
        &self,
        request: v1::EnrollOtpRequest,
    ) -> Result<v1::EnrollOtpResponse, Status> {
        let subject = checked_pseudonym(&request.subject)?;
        if subject.contains(':') {
            return Err(invalid("subject", "a TOTP account name has no ':'"));
        }
        self.redeem_token(&request.factor_token, subject, "otp")
            .await?;
        let enrollment = vitalgate_otp::enroll("vitalgate", subject, &self.factors().totp)
            .map_err(|e| Status::internal(e.to_string()))?;
        let sealed = self.vault().seal(&otp_label(subject), &enrollment.secret);
        let store = &**self.store();
        store
            .put_factor(subject, FactorKind::Otp as u8, &sealed, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        store
            .clear_attempts(OTP_SCOPE, subject)
            .await
            .map_err(|e| store_status(&e))?;
        self.audit("factor.otp.enrolled", subject, "otp", "with a factor token")
            .await;
        Ok(v1::EnrollOtpResponse {
            otpauth_uri: enrollment.otpauth_uri.clone(),
            qr_svg: enrollment.qr_svg.clone(),
        })
    }

    pub(crate) async fn enroll_biometric(
        &self,
        request: v1::EnrollBiometricRequest,
    ) -> Result<v1::EnrollBiometricResponse, Status> {
        let subject = checked_pseudonym(&request.subject)?;
        if request.public_key.len() != 32 {
            return Err(invalid("public_key", "an Ed25519 public key is 32 bytes"));
        }
        self.redeem_token(&request.factor_token, subject, "biometric")
            .await?;
        let store = &**self.store();
        store
            .put_factor(
                subject,
                FactorKind::Biometric as u8,
                &request.public_key,
                self.now(),
            )
            .await
            .map_err(|e| store_status(&e))?;
        // A re-enrolled factor starts afresh (fifty failures disabled it).
        store
            .clear_attempts(BIOMETRIC_SCOPE, subject)
            .await
            .map_err(|e| store_status(&e))?;
        self.audit(
            "factor.biometric.enrolled",
            subject,
            "biometric",
            "with a factor token",
        )
        .await;
        Ok(v1::EnrollBiometricResponse {})
    }

    pub(crate) async fn set_code_address(
        &self,
        request: Request<v1::SetCodeAddressRequest>,
    ) -> Result<Response<v1::SetCodeAddressResponse>, Status> {
        use v1::set_code_address_request::Address;
        self.admin().check(&request)?;
        let request = request.into_inner();
        let subject = checked_pseudonym(&request.subject)?;
        let destination = match request.address {
            Some(Address::Email(email)) if email.contains('@') && email.len() <= 254 => {
                vitalgate_otp::Destination::Email(email)
            }
            Some(Address::Phone(phone))
                if phone.starts_with('+')
                    && (8..=16).contains(&phone.len())
                    && phone[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                vitalgate_otp::Destination::Phone(phone)
            }
            _ => {
                return Err(invalid(
                    "address",
                    "an email address, or a phone number in E.164 form",
                ))
            }
        };
        let sealed = self
            .vault()
            .seal(&contact_label(subject), &encode_destination(&destination));
        self.store()
            .put_factor(subject, FactorKind::OutOfBand as u8, &sealed, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        self.audit(
            "factor.out-of-band.address",
            "admin",
            subject,
            destination.kind(),
        )
        .await;
        Ok(Response::new(v1::SetCodeAddressResponse {}))
    }

    pub(crate) async fn recover_device(
        &self,
        request: v1::RecoverDeviceRequest,
    ) -> Result<v1::RecoverDeviceResponse, Status> {
        let pseudonym = checked_pseudonym(&request.pseudonym)?;
        if request.device_serial == 0 {
            return Err(invalid("device_serial", "must be a credential serial"));
        }
        // Checked before the token is spent: a mistyped serial costs no token.
        self.check_replacement(pseudonym, request.device_serial, &request.device_credential)
            .await?;
        self.redeem_token(&request.factor_token, pseudonym, "rebind-device")
            .await?;
        let store = &**self.store();
        let replaced = store
            .bind_device(pseudonym, request.device_serial, self.now())
            .await
            .map_err(|e| store_status(&e))?;
        for old in &replaced {
            self.live().close(*old, CloseReason::Replaced);
        }
        self.audit(
            "device.recovered",
            pseudonym,
            &request.device_serial.to_string(),
            &format!("with a factor token; replaces {replaced:?}"),
        )
        .await;
        Ok(v1::RecoverDeviceResponse {
            replaced_serials: replaced,
        })
    }

    /// A replacement device must be the patient's: its credential, as the
    /// TTP issued it (carried in the request, or seen by this HSP before),
    /// is a live device credential naming `pseudonym`. Serials are
    /// sequential, so naming one is no proof of anything.
    async fn check_replacement(
        &self,
        pseudonym: &str,
        serial: u64,
        presented: &[u8],
    ) -> Result<(), Status> {
        let credential = if presented.is_empty() {
            let record = self
                .store()
                .credential(serial)
                .await
                .map_err(|e| store_status(&e))?
                .ok_or_else(|| {
                    Status::failed_precondition(format!(
                        "device {serial} has not connected to this HSP: pass its credential \
                         (vitalgate admin recover-device fetches it from the TTP)"
                    ))
                })?;
            Credential::decode(&record.encoded)
                .map_err(|e| Status::data_loss(format!("stored credential {serial}: {e}")))?
        } else {
            Credential::decode(presented)
                .map_err(|e| invalid("device_credential", &e.to_string()))?
        };
        if credential.serial() != serial {
            return Err(invalid(
                "device_credential",
                &format!("is credential {}, not {serial}", credential.serial()),
            ));
        }
        self.peers()
            .validate(
                &credential,
                RoleSet::only(Role::Device),
                UnixTime(self.now()),
            )
            .map_err(|e| Status::failed_precondition(format!("device {serial}: {e}")))?;
        if credential.subject() != pseudonym.as_bytes() {
            return Err(Status::permission_denied(format!(
                "device {serial}'s credential names another patient; a rebinding token \
                 moves only the patient's own devices"
            )));
        }
        Ok(())
    }
}
