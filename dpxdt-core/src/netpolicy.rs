//! Which network addresses a captured page may reach: the capture
//! browser's network policy, and the address classes the server's webhook
//! filter uses too.
//!
//! A [`NetworkPolicy`] decides on a host and the addresses it resolved to,
//! in this order: a `deny` rule matching the host or an address refuses;
//! a denied loopback port (chromedriver's, the filtering proxy's, the
//! server's own) refuses whatever the rules say; an `allow` rule admits;
//! then by class: loopback only when allowed, link-local (where cloud
//! metadata lives), unspecified, multicast and broadcast never, private
//! and shared ranges (RFC 1918, CGNAT, unique-local IPv6) when allowed,
//! public always.
//!
//! "Loopback" means this machine, however it is reached: 127/8 and ::1,
//! the unspecified addresses (`0.0.0.0` and `::` connect to the machine
//! itself), and every address of its own network interfaces
//! ([`is_this_machine`], re-read at most a minute apart), so that a
//! server's public or private interface address is no way around the
//! policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// What kind of address an IP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16 (cloud metadata), fe80::/10.
    LinkLocal,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10 (CGNAT), fc00::/7.
    Private,
    /// 0.0.0.0/8, ::, multicast, broadcast, 198.18/15 (benchmarking),
    /// 240/4 (reserved): nothing a page or a webhook has reason to call.
    Reserved,
    /// Everything else.
    Public,
}

/// The class of `ip`. IPv4 addresses inside IPv6 (mapped `::ffff:a.b.c.d`,
/// compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
/// classed by the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(v4: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        AddressClass::Loopback
    } else if v4.is_link_local() {
        AddressClass::LinkLocal
    } else if v4.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if a == 0
        || v4.is_multicast()
        || v4.is_broadcast()
        || a >= 240
        || (a == 198 && (18..20).contains(&b))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(v6: Ipv6Addr) -> AddressClass {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        AddressClass::Loopback
    } else if (first & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if (first & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if v6.is_unspecified() || v6.is_multicast() {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address an IPv6 address carries, in the forms that route to it.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // ::a.b.c.d (deprecated "compatible" form), but not :: and ::1.
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(tail);
    }
    // NAT64, the well-known prefix 64:ff9b::/96.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail);
    }
    // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// How long the list of this machine's interface addresses is trusted
/// before it is read again (interfaces come and go: DHCP, VPNs, Docker).
const OWN_ADDRESSES_TTL: Duration = Duration::from_secs(60);

/// Whether `ip` reaches this machine: a loopback or unspecified address, or
/// an address of one of its network interfaces (IPv4 inside IPv6 counts as
/// that IPv4 address).
pub fn is_this_machine(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified() || is_own_address(ip)
}

/// Whether `ip` is an address of this machine's interfaces, as read when
/// first asked and again once [`OWN_ADDRESSES_TTL`] has passed. If they
/// cannot be read, the last list read stays in force (and the failure is
/// not fatal: the loopback and unspecified addresses are known without it).
fn is_own_address(ip: IpAddr) -> bool {
    static CACHE: RwLock<Option<(Instant, Vec<IpAddr>)>> = RwLock::new(None);
    if let Ok(guard) = CACHE.read()
        && let Some((read_at, list)) = guard.as_ref()
        && read_at.elapsed() < OWN_ADDRESSES_TTL
    {
        return list.contains(&ip);
    }
    let mut guard = CACHE.write().unwrap_or_else(|p| p.into_inner());
    if let Ok(found) = if_addrs::get_if_addrs() {
        let list = found.iter().map(if_addrs::Interface::ip).collect();
        *guard = Some((Instant::now(), list));
    }
    // On a failed read the old list (if any) stays, and the next call tries again.
    guard.as_ref().is_some_and(|(_, list)| list.contains(&ip))
}

/// An `--capture-allow` / `--capture-deny` entry: an address block in CIDR
/// form (`10.0.0.0/8`, `::1/128`, a bare address) or a host name, which
/// also matches its subdomains (`example.com` matches `www.example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// An address block.
    Net(IpAddr, u8),
    /// A host name, lowercase.
    Host(String),
}

impl std::str::FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Rule, String> {
        let text = text.trim();
        let bad = |why: &str| format!("{text:?} is not a CIDR block or a host name: {why}");
        if text.is_empty() {
            return Err(bad("it is empty"));
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        if let Ok(ip) = addr.trim_matches(['[', ']']).parse::<IpAddr>() {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(p) => p
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(|| bad(&format!("the prefix must be 0 to {max}")))?,
                None => max,
            };
            return Ok(Rule::Net(ip, prefix));
        }
        if prefix.is_some() {
            return Err(bad("the part before / is not an IP address"));
        }
        let host = text.trim_end_matches('.').to_ascii_lowercase();
        let valid = host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !valid {
            return Err(bad("a host name is letters, digits, '-' and '.'"));
        }
        Ok(Rule::Host(host))
    }
}

impl Rule {
    fn matches_host(&self, host: &str) -> bool {
        match self {
            Rule::Host(h) => {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                host == *h || host.ends_with(&format!(".{h}"))
            }
            Rule::Net(..) => false,
        }
    }

    /// Whether `ip` is in this address block (a host rule matches no address).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        let Rule::Net(net, prefix) = self else {
            return false;
        };
        let ip = match (net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*prefix)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*prefix)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Which addresses the pages a browser captures may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Loopback addresses (the machine itself) are allowed.
    pub allow_loopback: bool,
    /// Private and shared ranges (staging servers) are allowed.
    pub allow_private: bool,
    /// Allowed whatever their class (but not over a `deny` rule).
    pub allow: Vec<Rule>,
    /// Refused always.
    pub deny: Vec<Rule>,
    /// Ports refused on loopback addresses even when loopback is allowed
    /// (chromedriver's, the server's own).
    pub denied_loopback_ports: Vec<u16>,
}

impl NetworkPolicy {
    /// For pages of one's own (local mode, `cargo test`): everything but
    /// link-local and reserved addresses, loopback included.
    pub fn local() -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback: true,
            allow_private: true,
            allow: Vec::new(),
            deny: Vec::new(),
            denied_loopback_ports: Vec::new(),
        }
    }

    /// For a shared server, where the URL may be an attacker's: public and
    /// private addresses (staging servers), not the machine itself, not
    /// link-local (cloud metadata).
    pub fn server() -> NetworkPolicy {
        NetworkPolicy {
            allow_loopback: false,
            ..NetworkPolicy::local()
        }
    }

    /// The address to connect to for `host` (as the page named it) among
    /// `addrs` (what it resolved to): the first one allowed, or why none is.
    /// Every address must be allowed, so that a host resolving to a public
    /// and an internal address cannot pick the internal one later.
    pub fn check(&self, host: &str, addrs: &[SocketAddr]) -> Result<SocketAddr, String> {
        if self.deny.iter().any(|r| r.matches_host(host)) {
            return Err(format!("{host} is denied by --capture-deny"));
        }
        let host_allowed = self.allow.iter().any(|r| r.matches_host(host));
        let first = addrs
            .first()
            .copied()
            .ok_or_else(|| format!("{host} has no address"))?;
        for addr in addrs {
            self.check_addr(*addr, host_allowed)
                .map_err(|why| format!("{host} is {}: {why}", addr.ip()))?;
        }
        Ok(first)
    }

    fn check_addr(&self, addr: SocketAddr, host_allowed: bool) -> Result<(), String> {
        let ip = addr.ip();
        if self.deny.iter().any(|r| r.matches_ip(ip)) {
            return Err("denied by --capture-deny".into());
        }
        // The machine's own interface addresses and 0.0.0.0 are loopback
        // by another name.
        let class = match classify(ip) {
            AddressClass::Loopback => AddressClass::Loopback,
            _ if is_this_machine(ip) => AddressClass::Loopback,
            class => class,
        };
        if class == AddressClass::Loopback && self.denied_loopback_ports.contains(&addr.port()) {
            return Err(format!(
                "port {} on this machine belongs to the capture browser or the server",
                addr.port()
            ));
        }
        if host_allowed || self.allow.iter().any(|r| r.matches_ip(ip)) {
            return Ok(());
        }
        match class {
            AddressClass::Public => Ok(()),
            AddressClass::Private if self.allow_private => Ok(()),
            AddressClass::Private => Err("a private address (--capture-deny-private)".into()),
            AddressClass::Loopback if self.allow_loopback => Ok(()),
            AddressClass::Loopback => Err(format!(
                "this machine (loopback or one of its own addresses; --capture-allow {ip} lets \
                 pages reach it)"
            )),
            AddressClass::LinkLocal => Err("link-local (where cloud metadata lives)".into()),
            AddressClass::Reserved => Err("a reserved address".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_are_classed() {
        use AddressClass::*;
        for (ip, class) in [
            ("127.0.0.1", Loopback),
            ("127.9.9.9", Loopback),
            ("::1", Loopback),
            ("::ffff:127.0.0.1", Loopback),
            ("::127.0.0.1", Loopback),
            ("64:ff9b::7f00:1", Loopback),
            ("2002:7f00:1::", Loopback),
            ("169.254.169.254", LinkLocal),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("fe80::1", LinkLocal),
            ("10.1.2.3", Private),
            ("172.16.0.1", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("fd00::1", Private),
            ("0.0.0.0", Reserved),
            ("::", Reserved),
            ("224.0.0.1", Reserved),
            ("255.255.255.255", Reserved),
            ("198.18.0.1", Reserved),
            ("240.0.0.1", Reserved),
            ("8.8.8.8", Public),
            ("2001:4860::8888", Public),
            ("2002:0808:0808::", Public),
        ] {
            assert_eq!(classify(ip.parse().unwrap()), class, "{ip}");
        }
    }

    #[test]
    fn rules_parse_or_say_why_not() {
        assert_eq!(
            "10.0.0.0/8".parse(),
            Ok(Rule::Net("10.0.0.0".parse().unwrap(), 8))
        );
        assert_eq!("::1".parse(), Ok(Rule::Net("::1".parse().unwrap(), 128)));
        assert_eq!(
            "Staging.Example.".parse(),
            Ok(Rule::Host("staging.example".into()))
        );
        for bad in ["", "10.0.0.0/33", "host/8", "a b", "x..y"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_server_policy_refuses_the_machine_and_metadata() {
        let p = NetworkPolicy::server();
        assert!(p.check("127.0.0.1", &[sa("127.0.0.1:80")]).is_err());
        assert!(p.check("localhost", &[sa("[::1]:80")]).is_err());
        let err = p
            .check("metadata", &[sa("169.254.169.254:80")])
            .unwrap_err();
        assert!(err.contains("link-local"), "{err}");
        assert!(p.check("staging", &[sa("10.0.0.5:8080")]).is_ok());
        assert!(p.check("example.com", &[sa("93.184.216.34:443")]).is_ok());
        // One internal address among public ones is enough to refuse.
        assert!(
            p.check("mixed", &[sa("93.184.216.34:80"), sa("127.0.0.1:80")])
                .is_err()
        );
        let private = NetworkPolicy {
            allow_private: false,
            ..NetworkPolicy::server()
        };
        let err = private.check("staging", &[sa("10.0.0.5:80")]).unwrap_err();
        assert!(err.contains("--capture-deny-private"), "{err}");
    }

    #[test]
    fn this_machines_own_addresses_are_loopback() {
        let own: Vec<IpAddr> = if_addrs::get_if_addrs()
            .unwrap()
            .iter()
            .map(if_addrs::Interface::ip)
            .filter(|ip| !ip.is_loopback())
            .collect();
        assert!(
            !own.is_empty(),
            "this test needs a network interface with an address besides loopback"
        );
        let p = NetworkPolicy::server();
        for ip in own {
            assert!(is_this_machine(ip), "{ip}");
            let err = p.check("me", &[SocketAddr::new(ip, 80)]).unwrap_err();
            assert!(err.contains("this machine"), "{ip}: {err}");
            // Allowed by name, its denied ports stay denied.
            let allowed = NetworkPolicy {
                allow: vec![Rule::Net(ip, if ip.is_ipv4() { 32 } else { 128 })],
                denied_loopback_ports: vec![5000],
                ..NetworkPolicy::server()
            };
            assert!(
                allowed.check("me", &[SocketAddr::new(ip, 80)]).is_ok(),
                "{ip}"
            );
            let err = allowed
                .check("me", &[SocketAddr::new(ip, 5000)])
                .unwrap_err();
            assert!(err.contains("port 5000"), "{ip}: {err}");
        }
        for unspecified in ["0.0.0.0:5000", "[::]:5000", "[::ffff:0.0.0.0]:5000"] {
            let err = p.check("any", &[sa(unspecified)]).unwrap_err();
            assert!(err.contains("this machine"), "{unspecified}: {err}");
        }
        assert!(!is_this_machine("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn allow_and_deny_rules_and_denied_ports() {
        let p = NetworkPolicy {
            allow: vec![
                "127.0.0.1".parse().unwrap(),
                "intranet.example".parse().unwrap(),
            ],
            deny: vec![
                "10.9.0.0/16".parse().unwrap(),
                "evil.example".parse().unwrap(),
            ],
            denied_loopback_ports: vec![9515],
            ..NetworkPolicy::server()
        };
        assert!(p.check("127.0.0.1", &[sa("127.0.0.1:8000")]).is_ok());
        assert!(p.check("127.0.0.1", &[sa("127.0.0.1:9515")]).is_err());
        assert!(
            p.check("wiki.intranet.example", &[sa("169.254.1.1:80")])
                .is_ok()
        );
        assert!(p.check("a.evil.example", &[sa("8.8.8.8:80")]).is_err());
        assert!(p.check("x", &[sa("10.9.3.4:80")]).is_err());
        assert!(p.check("x", &[sa("10.8.3.4:80")]).is_ok());
        let local = NetworkPolicy {
            denied_loopback_ports: vec![9515],
            ..NetworkPolicy::local()
        };
        assert!(local.check("localhost", &[sa("127.0.0.1:8000")]).is_ok());
        assert!(local.check("localhost", &[sa("127.0.0.1:9515")]).is_err());
        assert!(local.check("x", &[sa("169.254.169.254:80")]).is_err());
    }
}
