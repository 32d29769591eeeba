//! The client's address: the peer, or — behind a trusted reverse proxy — the right-most
//! `X-Forwarded-For` entry that is not itself a trusted proxy.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed (`GATEHOUSE_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR ranges (`10.0.0.1, 10.1.0.0/16,
    /// ::1`); empty means none.
    ///
    /// # Errors
    /// The first entry that is neither, quoted.
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client address for a request from `peer` carrying `forwarded_for` (the
    /// `X-Forwarded-For` values, in order). The header is ignored unless the peer is a
    /// trusted proxy; then entries are read from the right, skipping trusted proxies, and
    /// the first other one is the client. An unreadable entry stops the walk at the last
    /// address known good. An IPv4-mapped IPv6 address (`::ffff:192.0.2.7`, as a dual-stack
    /// listener sees IPv4 peers) is taken as the IPv4 address it is.
    #[must_use]
    pub fn client_address(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = forwarded_for
            .iter()
            .flat_map(|value| value.split(','))
            .map(str::trim);
        for entry in entries.collect::<Vec<_>>().into_iter().rev() {
            let Ok(address) = entry.parse::<IpAddr>() else {
                break;
            };
            let address = address.to_canonical();
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }

    /// The client address of `req`, as text; `None` when the peer is unknown (in tests).
    #[must_use]
    pub fn of(&self, req: &HttpRequest) -> Option<String> {
        let peer = req.peer_addr()?.ip();
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .collect();
        Some(self.client_address(peer, &forwarded).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let none = TrustedProxies::default();
        assert_eq!(none.client_address(mapped, &[]).to_string(), "192.0.2.7");
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let proxy: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            proxies
                .client_address(proxy, &["::ffff:198.51.100.9"])
                .to_string(),
            "198.51.100.9"
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parsing() {
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
        assert_eq!(
            TrustedProxies::parse("10.0.0.1, 10.1.0.0/16 ,::1")
                .unwrap()
                .0
                .len(),
            3
        );
        assert!(TrustedProxies::parse("10.0.0.1, proxy.local").is_err());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }

    #[test]
    fn the_header_is_ignored_from_untrusted_peers() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), &["1.2.3.4"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // The client forged "1.1.1.1"; our proxies appended the real address and each other.
        let chain = ["1.1.1.1, 198.51.100.4", "10.0.0.2"];
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), &chain),
            ip("198.51.100.4")
        );
        assert_eq!(proxies.client_address(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), &["10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), &["junk, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(
            proxies.client_address(ip("10.0.0.1"), &["2001:db8::1"]),
            ip("2001:db8::1")
        );
    }

    proptest! {
        #[test]
        fn never_panics_and_answers_an_address_from_the_request(header in "\\PC{0,120}") {
            let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
            let client = proxies.client_address(ip("10.0.0.1"), &[&header]);
            let from_header = header.split(',').filter_map(|e| e.trim().parse::<IpAddr>().ok()).any(|a| a == client);
            prop_assert!(client == ip("10.0.0.1") || from_header);
        }
    }
}
