//! The client's address behind a load balancer.
//!
//! Behind a proxy every request comes from the proxy's address, so per-address
//! rate limits would put all clients in one bucket. A proxy listed in
//! `TANDEM_TRUSTED_PROXIES` passes the client on in `X-Forwarded-For`; each
//! proxy appends the address it heard from, so the client is the rightmost
//! entry that is not itself a trusted proxy. Entries left of it were written
//! by the client and are not believed. A request from an address that is not
//! listed keeps its own address, whatever its headers say.

use std::net::IpAddr;

use ipnet::IpNet;

/// Most `X-Forwarded-For` entries read (from the right); a longer chain of
/// trusted proxies is not a real deployment.
const MAX_HOPS: usize = 16;

/// Addresses and networks whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// A comma-separated list of addresses (`10.0.0.5`, `::1`) and networks
    /// (`10.0.0.0/8`); blank entries are ignored.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "{entry:?} is not an address or network (such as 10.0.0.5 or 10.0.0.0/8)"
                    )
                })?;
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.0.iter().any(|n| n.contains(&addr))
    }

    /// The client's address: `peer` itself unless `peer` is a trusted proxy
    /// with a readable `X-Forwarded-For` (`forwarded`, every header line in order).
    /// The header lines are read only when `peer` is trusted: with no proxy
    /// listed, a request costs no allocation here.
    pub fn client<S: AsRef<str>>(
        &self,
        peer: IpAddr,
        forwarded: impl Iterator<Item = S>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let lines: Vec<S> = forwarded.collect();
        let entries: Vec<&str> = lines.iter().flat_map(|h| h.as_ref().split(',')).collect();
        let mut client = peer;
        for entry in entries.iter().rev().take(MAX_HOPS) {
            let Some(addr) = parse_entry(entry) else {
                // Garbage from here leftwards: the last good hop is the client.
                break;
            };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an address, possibly with a port
/// (`1.2.3.4:5`, `[::1]:5`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(a) = e.parse::<IpAddr>() {
        return Some(canonical(a));
    }
    e.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

/// An IPv4 address mapped into IPv6 is the IPv4 address.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_and_networks() {
        let t = TrustedProxies::parse(" 10.0.0.0/8, ::1 ,,192.168.1.7").unwrap();
        assert!(t.trusts(ip("10.1.2.3")));
        assert!(t.trusts(ip("::1")));
        assert!(t.trusts(ip("::ffff:192.168.1.7")));
        assert!(!t.trusts(ip("192.168.1.8")));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.local").is_err());
        assert_eq!(
            TrustedProxies::parse("").unwrap(),
            TrustedProxies::default()
        );
    }

    #[test]
    fn believes_only_trusted_proxies() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        // A client that speaks directly cannot pick its address.
        assert_eq!(
            t.client(ip("203.0.113.9"), ["1.1.1.1"].into_iter()),
            ip("203.0.113.9")
        );
        // Through one proxy.
        assert_eq!(
            t.client(ip("10.0.0.2"), ["203.0.113.9"].into_iter()),
            ip("203.0.113.9")
        );
        // The client's own entry on the left is not believed; two proxies, two header lines.
        assert_eq!(
            t.client(
                ip("10.0.0.2"),
                ["6.6.6.6, 203.0.113.9", "10.0.0.3"].into_iter()
            ),
            ip("203.0.113.9")
        );
        // With ports, and IPv6.
        assert_eq!(
            t.client(ip("10.0.0.2"), ["[2001:db8::1]:4711"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            t.client(ip("10.0.0.2"), ["203.0.113.9:80"].into_iter()),
            ip("203.0.113.9")
        );
        // Garbage or nothing: the proxy itself, or the last good hop.
        assert_eq!(
            t.client(ip("10.0.0.2"), ["nonsense"].into_iter()),
            ip("10.0.0.2")
        );
        assert_eq!(
            t.client(ip("10.0.0.2"), std::iter::empty::<&str>()),
            ip("10.0.0.2")
        );
        assert_eq!(
            t.client(ip("10.0.0.2"), ["x, 10.0.0.4"].into_iter()),
            ip("10.0.0.4")
        );
        // None listed: nobody is believed.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.2"), ["203.0.113.9"].into_iter()),
            ip("10.0.0.2")
        );
    }
}
