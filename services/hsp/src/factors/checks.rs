//! Checks of a factor that the handshake's factor rounds and the portal's
//! sign-in share, so that both paths refuse the same things the same way.

use vitalgate_core::factor::FactorKind;

use super::{begin_attempts, otp_label, FactorFailure, FactorVerifier, OTP_SCOPE};

impl FactorVerifier {
    /// Counts a guess at `subject`'s TOTP code, checks `code` against the
    /// authenticator enrolled now (read at the check, so one reset or
    /// removed meanwhile no longer counts) and claims its time step, once
    /// across replicas. The caller audits a refusal its own way, and starts
    /// the count again when its whole sign-in has succeeded.
    pub(crate) async fn check_totp(&self, subject: &str, code: &str) -> Result<(), FactorFailure> {
        let store = &*self.store;
        begin_attempts(
            store,
            &*self.clock,
            &[(OTP_SCOPE, subject, &self.policy.otp_limit)],
            subject,
        )
        .await?;
        let sealed = store.factor(subject, FactorKind::Otp as u8).await?.ok_or(
            FactorFailure::NotEnrolled {
                kind: FactorKind::Otp,
                what: "no authenticator is set up for this account",
            },
        )?;
        let secret = self
            .vault
            .open(&otp_label(subject), &sealed)
            .map(zeroize::Zeroizing::new)
            .ok_or(FactorFailure::Unreadable("the TOTP secret does not open"))?;
        match vitalgate_otp::verify_and_claim(
            store,
            subject,
            &secret,
            code,
            self.clock.now(),
            &self.totp,
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(vitalgate_otp::OtpError::Reused) => Err(FactorFailure::Reused {
                kind: FactorKind::Otp,
            }),
            Err(vitalgate_otp::OtpError::Store(e)) => Err(e.into()),
            Err(_) => Err(FactorFailure::Refused {
                kind: FactorKind::Otp,
                reason: "one-time code refused",
            }),
        }
    }
}
