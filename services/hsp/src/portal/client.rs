//! Who is at the other end of a portal request, as far as password guessing
//! is concerned (see `crate::guesses`): the client's address, taken from
//! `Forwarded` or `X-Forwarded-For` only when the connection comes from a
//! proxy the configuration trusts, and the device cookie a browser received
//! at an earlier sign-in to an account (OWASP's device cookies: a browser
//! that signed in before keeps a guessing budget of its own, so strangers
//! cannot use up the owner's).
//!
//! A device cookie is `id.issued_at.mac`: 128 random bits, the issue time, and
//! an HMAC-SHA256 under a key derived from the HSP's data key over the
//! account and both. Nothing is stored: any replica checks it. It is
//! HttpOnly, SameSite=Strict, lives 90 days, and names one account (one
//! cookie per account, so a shared ward computer serves each clinician).

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::{header, HeaderMap};
use rand_core::{OsRng, RngCore};
use vitalgate_core::provider::{AwsLc, CryptoProvider};

use super::Portal;

/// How long a device cookie is honoured.
pub(crate) const DEVICE_COOKIE_SECS: u64 = 90 * 86_400;
const DEVICE_COOKIE_LABEL: &[u8] = b"vitalgate/1 portal device cookie";

/// An address or network a proxy in front of the portal sends from
/// (`10.0.0.5`, `10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an IP address or a network such as 10.0.0.0/8");
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let longest = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => longest,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= longest)
                .ok_or_else(bad)?,
        };
        Ok(Self { network, prefix })
    }
}

impl TrustedProxy {
    fn contains(&self, address: IpAddr) -> bool {
        let bits = |a: IpAddr| -> u128 {
            match a {
                IpAddr::V4(v4) => u128::from(u32::from(v4)),
                IpAddr::V6(v6) => u128::from(v6),
            }
        };
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        if address.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        let width = if address.is_ipv4() { 32 } else { 128 };
        let shift = width - u32::from(self.prefix);
        if shift >= 128 {
            return true;
        }
        bits(address) >> shift == bits(self.network) >> shift
    }
}

/// The client's address: the connection's peer, or, when that peer is a
/// trusted proxy, the nearest address the proxies forwarded that is not
/// itself a trusted proxy (the standard right-to-left walk, so a client
/// cannot choose its address by sending the header itself).
pub(crate) fn client_address(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
) -> IpAddr {
    let is_trusted = |a: IpAddr| trusted.iter().any(|t| t.contains(a));
    let peer = peer.ip();
    if !is_trusted(peer) {
        return peer;
    }
    let forwarded = forwarded_for(headers);
    forwarded
        .iter()
        .rev()
        .copied()
        .find(|a| !is_trusted(*a))
        .or_else(|| forwarded.first().copied())
        .unwrap_or(peer)
}

/// The `for=` addresses of `Forwarded` (RFC 7239), or else of
/// `X-Forwarded-For`, in order; unparseable hops end the list there.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let values = |name| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let hops: Vec<&str> = {
        let forwarded = values(header::FORWARDED);
        if forwarded.is_empty() {
            values(header::HeaderName::from_static("x-forwarded-for"))
        } else {
            forwarded
                .into_iter()
                .filter_map(|element| {
                    element.split(';').find_map(|pair| {
                        let (key, value) = pair.trim().split_once('=')?;
                        key.eq_ignore_ascii_case("for")
                            .then(|| value.trim_matches('"'))
                    })
                })
                .collect()
        }
    };
    hops.into_iter().map_while(parse_hop).collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            hop.strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .and_then(|h| h.parse().ok())
        })
}

impl Portal {
    fn device_cookie_name(&self, user: &str) -> String {
        let tag = hex::encode(&AwsLc::sha256(&[DEVICE_COOKIE_LABEL, user.as_bytes()])[..8]);
        if self.config.secure_cookies {
            format!("__Host-vg_device_{tag}")
        } else {
            format!("vg_device_{tag}")
        }
    }

    fn device_cookie_mac(&self, user: &str, id: &str, issued_at: u64) -> [u8; 32] {
        let key = self.hsp.vault().derive_key("portal device cookies");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key[..]);
        let input = [
            DEVICE_COOKIE_LABEL,
            &(user.len() as u64).to_be_bytes(),
            user.as_bytes(),
            id.as_bytes(),
            &issued_at.to_be_bytes(),
        ]
        .concat();
        let mut mac = [0u8; 32];
        mac.copy_from_slice(aws_lc_rs::hmac::sign(&key, &input).as_ref());
        mac
    }

    /// The id of the device cookie the browser holds for `user`, if it is
    /// one this HSP issued and it has not expired.
    pub(crate) fn known_browser(&self, headers: &HeaderMap, user: &str) -> Option<String> {
        let value = super::session::cookie(headers, &self.device_cookie_name(user))?;
        let mut parts = value.split('.');
        let (id, issued_at, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let issued_at: u64 = issued_at.parse().ok()?;
        let mac = hex::decode(mac).ok()?;
        let expected = self.device_cookie_mac(user, id, issued_at);
        let genuine = mac.len() == expected.len()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&mac, &expected).is_ok();
        let fresh = self.hsp.now() < issued_at.saturating_add(DEVICE_COOKIE_SECS);
        (genuine && fresh && id.len() == 32).then(|| id.to_string())
    }

    /// The Set-Cookie value that gives this browser (again) a device cookie
    /// for `user`, keeping the id it had.
    pub(crate) fn device_cookie(&self, user: &str, known: Option<&str>) -> String {
        let id = known.map_or_else(
            || {
                let mut id = [0u8; 16];
                OsRng.fill_bytes(&mut id);
                hex::encode(id)
            },
            str::to_string,
        );
        let issued_at = self.hsp.now();
        let mac = hex::encode(self.device_cookie_mac(user, &id, issued_at));
        let secure = if self.config.secure_cookies {
            "; Secure"
        } else {
            ""
        };
        format!(
            "{}={id}.{issued_at}.{mac}; Path=/; HttpOnly; SameSite=Strict; Max-Age={DEVICE_COOKIE_SECS}{secure}",
            self.device_cookie_name(user)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter().map(|p| p.parse().expect("proxy")).collect()
    }

    #[test]
    fn proxies_parse_and_match_their_networks() {
        assert!("10.0.0.0/33".parse::<TrustedProxy>().is_err());
        assert!("not-an-ip".parse::<TrustedProxy>().is_err());
        let cases = [
            ("10.0.0.0/8", "10.200.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.5", "10.0.0.5", true),
            ("10.0.0.5", "10.0.0.6", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("fd00::/8", "fd12::1", true),
            ("fd00::/8", "fe80::1", false),
            ("127.0.0.1", "::ffff:127.0.0.1", true),
            ("10.0.0.0/8", "::1", false),
        ];
        for (proxy, address, inside) in cases {
            let proxy: TrustedProxy = proxy.parse().expect("proxy");
            let address: IpAddr = address.parse().expect("address");
            assert_eq!(proxy.contains(address), inside, "{proxy:?} {address}");
        }
    }

    #[test]
    fn the_client_address_is_forwarded_only_through_trusted_proxies() {
        let peer: SocketAddr = "10.0.0.5:4000".parse().expect("peer");
        let header = |name: &'static str, value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_str(value).expect("value"));
            headers
        };
        type Case<'a> = (&'a [&'a str], HeaderMap, &'a str);
        let cases: Vec<Case<'_>> = vec![
            // No trusted proxy: the header is the client's own words.
            (&[], header("x-forwarded-for", "203.0.113.7"), "10.0.0.5"),
            (
                &["10.0.0.5"],
                header("x-forwarded-for", "203.0.113.7"),
                "203.0.113.7",
            ),
            // A client that sends its own header is named by the proxy's
            // hop, the rightmost untrusted one.
            (
                &["10.0.0.0/8"],
                header("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.9"),
                "203.0.113.7",
            ),
            (
                &["10.0.0.5"],
                header(
                    "forwarded",
                    "for=192.0.2.60;proto=https, for=\"[2001:db8::1]:4711\"",
                ),
                "2001:db8::1",
            ),
            (&["10.0.0.5"], HeaderMap::new(), "10.0.0.5"),
            (
                &["10.0.0.5"],
                header("x-forwarded-for", "garbage"),
                "10.0.0.5",
            ),
        ];
        for (trusted, headers, expected) in cases {
            let found = client_address(peer, &headers, &proxies(trusted));
            assert_eq!(found.to_string(), expected, "{trusted:?} {headers:?}");
        }
    }
}
