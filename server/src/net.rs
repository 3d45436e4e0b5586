//! Client addresses: `X-Forwarded-For` is believed only from configured trusted proxies.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses a trusted-proxy entry (an IP or a CIDR).
pub fn parse_proxy(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The set of trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// From config entries (validated at load).
    pub fn new(entries: &[String]) -> Self {
        TrustedProxies(entries.iter().filter_map(|e| parse_proxy(e)).collect())
    }

    /// The client IP: the peer, or — when the peer is trusted — the right-most untrusted
    /// address of `X-Forwarded-For`.
    pub fn client_ip(&self, peer: Option<IpAddr>, forwarded_for: Option<&str>) -> String {
        let Some(peer) = peer else {
            return String::new();
        };
        if !self.is_trusted(peer) {
            return peer.to_string();
        }
        let Some(xff) = forwarded_for else {
            return peer.to_string();
        };
        let mut chosen = peer;
        for hop in xff.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    chosen = ip;
                    if !self.is_trusted(ip) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        chosen.to_string()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

/// The peer IP of a poem request.
pub fn peer_ip(req: &poem::Request) -> Option<IpAddr> {
    match req.remote_addr().0 {
        poem::Addr::SocketAddr(sa) => Some(sa.ip()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let t = TrustedProxies::new(&["10.0.0.0/8".into(), "127.0.0.1".into()]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            t.client_ip(Some(peer), Some("1.2.3.4, 10.1.1.1")),
            "1.2.3.4"
        );
        let stranger: IpAddr = "8.8.8.8".parse().unwrap();
        assert_eq!(t.client_ip(Some(stranger), Some("1.2.3.4")), "8.8.8.8");
        assert_eq!(t.client_ip(Some(peer), Some("garbage")), "127.0.0.1");
        assert_eq!(
            TrustedProxies::default().client_ip(Some(peer), Some("1.2.3.4")),
            "127.0.0.1"
        );
    }
}
