//! Which addresses callhook may connect to (SPEC §7 Targets): by default only public ones, so a
//! webhook URL cannot reach the operator's own network (SSRF). Checked for every resolved
//! address and for literal IPs; an operator can allow networks with `allow_targets`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused, for the attempt's error.
pub fn blocked_reason(ip: IpAddr, allow: &[IpNet]) -> Option<String> {
    let canonical = canonical(ip);
    if allow
        .iter()
        .any(|net| net.contains(&canonical) || net.contains(&ip))
    {
        return None;
    }
    let why = match canonical {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }?;
    Some(format!(
        "{ip} is {why}; callhook only connects to public addresses unless the operator allows the network \
         (allow_targets = [\"{}\"], or CALLHOOK_ALLOW_TARGETS)",
        IpNet::from(canonical).trunc()
    ))
}

/// An IPv4 address written as IPv6 (`::ffff:127.0.0.1`, the deprecated `::127.0.0.1`, or the
/// NAT64 prefix `64:ff9b::/96`) is judged as the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let embedded = Ipv4Addr::from(((s[6] as u32) << 16) | s[7] as u32);
            if s[..6] == [0, 0, 0, 0, 0, 0] && !matches!(u32::from(embedded), 0 | 1) {
                return IpAddr::V4(embedded);
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return IpAddr::V4(embedded);
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [127, ..] => "a loopback address",
        [10, ..] => "a private address (10.0.0.0/8)",
        [172, b, ..] if (16..32).contains(&b) => "a private address (172.16.0.0/12)",
        [192, 168, ..] => "a private address (192.168.0.0/16)",
        [169, 254, 169, 254] => "the cloud metadata address",
        [169, 254, ..] => "a link-local address",
        [100, b, ..] if (64..128).contains(&b) => "a carrier-grade NAT address (100.64.0.0/10)",
        [0, ..] => "in 0.0.0.0/8 (this network)",
        [192, 0, 0, _] => "an IETF protocol address (192.0.0.0/24)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "a documentation address",
        [192, 88, 99, _] => "a 6to4 relay address",
        [198, b, ..] if b == 18 || b == 19 => "a benchmarking address (198.18.0.0/15)",
        [224..=239, ..] => "a multicast address",
        [240..=255, ..] => "a reserved or broadcast address",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "the unspecified address",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address",
        [a, ..] if a & 0xfe00 == 0xfc00 => "a unique local address (fc00::/7)",
        [a, ..] if a & 0xffc0 == 0xfe80 => "a link-local address",
        [a, ..] if a & 0xffc0 == 0xfec0 => "a site-local address",
        [a, ..] if a & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0xdb8, ..] => "a documentation address (2001:db8::/32)",
        [a, ..] if a & 0xfff0 == 0x3ff0 => "a documentation address (3fff::/20)",
        [0x100, 0, 0, 0, ..] => "a discard-only address (100::/64)",
        [0x2001, b, ..] if b < 0x200 => "an IETF special-purpose address (2001::/23)",
        [0x2002, ..] => "a 6to4 address",
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64 address (64:ff9b:1::/48)",
        [0, ..] => "a reserved address (::/8)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(s: &str) -> bool {
        blocked_reason(s.parse().unwrap(), &[]).is_some()
    }

    #[test]
    fn non_public_addresses_are_blocked() {
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
            "2001::1",
            "2002::1",
            "100::1",
        ] {
            assert!(blocked(ip), "{ip} must be blocked");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.255.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!blocked(ip), "{ip} must pass");
        }
    }

    #[test]
    fn the_reason_says_what_and_how_to_allow() {
        let why = blocked_reason("169.254.169.254".parse().unwrap(), &[]).unwrap();
        assert!(
            why.contains("metadata") && why.contains("allow_targets"),
            "{why}"
        );
        let why = blocked_reason("::ffff:127.0.0.1".parse().unwrap(), &[]).unwrap();
        assert!(
            why.contains("loopback") && why.contains("127.0.0.1/32"),
            "{why}"
        );
    }

    #[test]
    fn allowed_networks_pass_in_either_spelling() {
        let allow: Vec<IpNet> = vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        for ip in ["127.0.0.1", "::ffff:127.0.0.1", "::1", "10.9.8.7"] {
            assert!(
                blocked_reason(ip.parse().unwrap(), &allow).is_none(),
                "{ip}"
            );
        }
        assert!(blocked_reason("192.168.0.1".parse().unwrap(), &allow).is_some());
    }
}
