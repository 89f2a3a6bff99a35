//! The onboarding link an administrator hands a new clinician: the portal's
//! welcome page with the clinician's name and two single-use factor tokens
//! (a password, an authenticator app) in the URL's fragment. Browsers never
//! send a fragment to a server, so the tokens stay out of proxies' and the
//! portal's request logs; the page removes them from its address bar.
//!
//! Pure: the link and its QR code from their parts.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// What stays as it is in a fragment's path segment: RFC 3986's unreserved
/// characters (the router decodes the rest).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The portal's address as the clinician's browser reaches it, checked:
/// `http://` or `https://`, a host, and nothing after the path.
pub(crate) fn portal_base(url: &str) -> Result<String, String> {
    let trimmed = url.trim();
    let (scheme, rest) = ["https://", "http://"]
        .into_iter()
        .find_map(|scheme| Some((scheme, trimmed.strip_prefix(scheme)?)))
        .ok_or_else(|| {
            format!("the portal's URL {url:?} must start with https:// (or http:// on loopback)")
        })?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("the portal's URL {url:?} names no host"));
    }
    if rest.contains(['#', '?']) {
        return Err(format!(
            "the portal's URL {url:?} must be the portal's address alone (no ? or #)"
        ));
    }
    Ok(format!("{scheme}{rest}"))
}

/// The welcome page's link for `clinician` with its two tokens.
pub(crate) fn welcome_link(base: &str, clinician: &str, password: &str, otp: &str) -> String {
    let segment = |text: &str| utf8_percent_encode(text, SEGMENT).to_string();
    format!(
        "{base}/#/welcome/{}/{}/{}",
        segment(clinician),
        segment(password),
        segment(otp)
    )
}

/// `link` as a QR code drawn in a terminal (two rows a character).
pub(crate) fn terminal_qr(link: &str) -> Result<String, String> {
    let code = qrcode::QrCode::new(link.as_bytes())
        .map_err(|e| format!("the link does not fit a QR code: {e}"))?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_is_an_http_address_alone() {
        assert_eq!(
            portal_base("https://portal.hospital.example/").expect("accepted"),
            "https://portal.hospital.example"
        );
        assert_eq!(
            portal_base("http://127.0.0.1:7080").expect("accepted"),
            "http://127.0.0.1:7080"
        );
        assert!(portal_base("127.0.0.1:7080")
            .expect_err("refused")
            .contains("must start with https://"));
        assert!(portal_base("https://")
            .expect_err("refused")
            .contains("no host"));
        assert!(portal_base("https://portal/#/login")
            .expect_err("refused")
            .contains("no ? or #"));
    }

    #[test]
    fn the_link_carries_name_and_tokens_in_the_fragment_encoded() {
        let link = welcome_link("https://p.example", "dr ana/ward 3", "ab12", "cd34");
        assert_eq!(
            link,
            "https://p.example/#/welcome/dr%20ana%2Fward%203/ab12/cd34"
        );
        // Nothing before the fragment names the clinician or a token.
        let (before, _) = link.split_once('#').expect("a fragment");
        assert!(!before.contains("ab12") && !before.contains("dr"));
    }

    #[test]
    fn the_qr_code_is_drawn_in_block_characters() {
        let qr = terminal_qr("https://p.example/#/welcome/dr-a/ab/cd").expect("accepted");
        assert!(qr.lines().count() > 10);
        assert!(qr.contains('█') || qr.contains('▀') || qr.contains('▄'));
    }
}
