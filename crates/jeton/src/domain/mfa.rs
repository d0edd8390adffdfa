//! Staff members' second factor: TOTP as RFC 6238 fixes it for
//! authenticator apps (SHA-1, 6 digits, 30-second steps, one step of drift
//! either way), with the `totp-rs` crate. A code is accepted once: the
//! store keeps the last step each member used, and only a later one passes
//! (RFC 6238 §5.2).

use rand::TryRng;
use time::OffsetDateTime;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use zeroize::Zeroizing;

/// What authenticator apps show as the account's issuer.
const ISSUER: &str = "Jeton";

/// A member's TOTP secret, in base32 as stored. Never in `Debug`.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<String>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// 160 random bits from the operating system, the length RFC 4226 §4
    /// recommends.
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new([0u8; 20]);
        rand::rngs::SysRng
            .try_fill_bytes(bytes.as_mut())
            .expect("the operating system's random source works");
        TotpSecret(Zeroizing::new(Secret::from(bytes.to_vec()).to_base32()))
    }

    /// A secret as stored.
    pub fn from_stored(base32: String) -> TotpSecret {
        TotpSecret(Zeroizing::new(base32))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn totp(&self, account: &str) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_skew(1)
            .with_step_duration(30)
            .with_secret(Secret::try_from_base32(self.expose()).ok()?)
            .with_account_name(account)
            .with_issuer(Some(ISSUER))
            .build()
            .ok()
    }

    /// The step of `code` if it is right at `now` (or one step either side).
    pub fn check(&self, code: &TotpCode, now: OffsetDateTime) -> Option<i64> {
        let totp = self.totp("")?;
        let now = u64::try_from(now.unix_timestamp()).ok()?;
        let step = totp.check(&code.0, now)?;
        i64::try_from(step).ok()
    }

    /// What an authenticator app is given: the `otpauth://` URI, and the
    /// same as a QR code drawn in SVG.
    pub fn enrolment(&self, account: &str) -> Option<Enrolment> {
        let uri = self.totp(account)?.to_url().ok()?;
        let svg = qrcode::QrCode::new(uri.as_bytes())
            .ok()?
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build();
        Some(Enrolment {
            otpauth_uri: uri,
            qr_svg: svg,
        })
    }
}

/// See [`TotpSecret::enrolment`].
pub struct Enrolment {
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// Six ASCII digits, as the member types them.
#[derive(Clone)]
pub struct TotpCode(String);

impl TotpCode {
    pub fn parse(text: &str) -> Result<TotpCode, String> {
        if text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(TotpCode(text.to_owned()))
        } else {
            Err("six digits, from the authenticator app".to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_of_the_uri_is_right_for_its_step_and_one_either_side() {
        let secret = TotpSecret::generate();
        let enrolment = secret.enrolment("owner@shop.example").unwrap();
        assert!(
            enrolment
                .otpauth_uri
                .starts_with("otpauth://totp/Jeton:owner%40shop.example?")
        );
        assert!(enrolment.qr_svg.contains("<svg"));
        let app = Totp::from_url(&enrolment.otpauth_uri).unwrap();
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_015).unwrap();
        let code = TotpCode::parse(&app.generate(1_800_000_015).to_string()).unwrap();
        assert_eq!(secret.check(&code, now), Some(60_000_000));
        for drift in [-30, 30] {
            assert!(
                secret
                    .check(&code, now + time::Duration::seconds(drift))
                    .is_some()
            );
        }
        for drift in [-60, 60] {
            assert!(
                secret
                    .check(&code, now + time::Duration::seconds(drift))
                    .is_none()
            );
        }
    }

    #[test]
    fn codes_are_six_digits() {
        assert!(TotpCode::parse("012345").is_ok());
        for bad in ["", "12345", "1234567", "12345a", "١٢٣٤٥٦"] {
            assert!(TotpCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_is_not_in_debug() {
        let secret = TotpSecret::generate();
        assert!(!format!("{secret:?}").contains(secret.expose()));
    }
}
