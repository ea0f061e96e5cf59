//! Where a webhook may be sent. A webhook URL is attacker-controlled input:
//! unless `CHAINPAY_WEBHOOK_ALLOW_PRIVATE=1` (development, tests), only
//! `https` to public addresses; the host is resolved here, every address
//! it resolves to must be public, and the request then goes to the address
//! checked (so a DNS answer cannot change between the check and the
//! connection), without following redirects.

use std::net::{IpAddr, SocketAddr};

use reqwest::Url;

use crate::error::Error;

/// A URL checked for sending, with the address to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: Url,
    pub host: String,
    pub addr: SocketAddr,
}

/// Whether an address is one an outside caller must never make us reach:
/// loopback, private, link-local, carrier-grade NAT, unspecified,
/// broadcast, multicast, documentation, unique-local, or IPv4 mapped onto
/// any of those.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 198 && (b & 0xfe) == 18)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let first = s[0];
            // An IPv4 address carried inside (mapped, compatible, NAT64,
            // 6to4) is judged as that address.
            let v4_of = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            let embedded = if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0; 6] {
                Some(v4_of(s[6], s[7]))
            } else if first == 0x2002 {
                Some(v4_of(s[1], s[2]))
            } else {
                v6.to_ipv4_mapped()
            };
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first & 0xffc0) == 0xfec0
                || (first == 0x2001 && s[1] == 0x0db8)
                || (first == 0x64 && s[1] == 0xff9b && s[2] == 1)
                || embedded.is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Longest URL kept (the column's own bound).
const MAX_URL_CHARS: usize = 2_000;
/// Longest wait for a webhook host's addresses.
const LOOKUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// One answer for a host that does not resolve and one that resolves to a
/// private address: telling them apart would let a business map which
/// names exist inside the gateway's network.
const NOT_PUBLIC: &str = "its host does not resolve to public addresses only";

/// Checks `raw` and resolves its host; refused with a clear reason.
pub async fn check(raw: &str, allow_private: bool) -> Result<Target, Error> {
    let refuse = |why: &str| Error::Validation(format!("url: {why}"));
    // Checked as it is kept (parsing may encode the host or path at greater
    // length), after a cheap bound on what is parsed at all.
    if raw.len() > 4 * MAX_URL_CHARS {
        return Err(refuse("longer than 2,000 characters"));
    }
    let url = Url::parse(raw.trim()).map_err(|_| refuse("not a URL"))?;
    if url.as_str().chars().count() > MAX_URL_CHARS {
        return Err(refuse("longer than 2,000 characters"));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(refuse("must be https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry credentials"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| refuse("has no host"))?
        .to_owned();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refuse("has no port"))?;
    let lookup = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    // A resolver that does not answer must not hold the request (or a
    // delivery) for as long as the system's own resolver waits.
    let resolved = tokio::time::timeout(
        LOOKUP_PATIENCE,
        tokio::net::lookup_host((lookup.as_str(), port)),
    )
    .await
    .map_err(|_| refuse(NOT_PUBLIC))?;
    let addrs: Vec<SocketAddr> = resolved.map_err(|_| refuse(NOT_PUBLIC))?.collect();
    let addr = *addrs.first().ok_or_else(|| refuse(NOT_PUBLIC))?;
    if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
        return Err(refuse(NOT_PUBLIC));
    }
    Ok(Target {
        url,
        host: lookup,
        addr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_recognised() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "240.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::",
            "::a00:1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "41.90.64.1", "2001:4860:4860::8888"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
