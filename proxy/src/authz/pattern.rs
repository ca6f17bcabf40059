//! The value matchers of authorization policies: Istio's string patterns and IP blocks.

use std::net::IpAddr;

/// One string pattern: exact, `prefix*`, `*suffix`, or `*` (any present value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Any,
}

/// An IP block: an address and how many leading bits must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct IpBlock {
    network: IpAddr,
    bits: u8,
}

// === impl Pattern ===

impl Pattern {
    pub(super) fn parse(text: &str) -> Pattern {
        if text == "*" {
            Pattern::Any
        } else if let Some(suffix) = text.strip_prefix('*') {
            Pattern::Suffix(suffix.to_owned())
        } else if let Some(prefix) = text.strip_suffix('*') {
            Pattern::Prefix(prefix.to_owned())
        } else {
            Pattern::Exact(text.to_owned())
        }
    }

    /// Whether `value` (absent: `None`) matches.
    pub(super) fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match self {
            Pattern::Exact(exact) => value == exact,
            Pattern::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Pattern::Suffix(suffix) => value.ends_with(suffix.as_str()),
            Pattern::Any => true,
        }
    }

    /// Like `matches`, ignoring ASCII case (host names).
    pub(super) fn matches_ignore_case(&self, value: Option<&str>) -> bool {
        let lower = value.map(str::to_ascii_lowercase);
        let pattern = match self {
            Pattern::Exact(s) => Pattern::Exact(s.to_ascii_lowercase()),
            Pattern::Prefix(s) => Pattern::Prefix(s.to_ascii_lowercase()),
            Pattern::Suffix(s) => Pattern::Suffix(s.to_ascii_lowercase()),
            Pattern::Any => Pattern::Any,
        };
        pattern.matches(lower.as_deref())
    }
}

// === impl IpBlock ===

impl IpBlock {
    /// `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub(super) fn parse(text: &str) -> Result<IpBlock, String> {
        let bad = || format!("{text:?} is not an IP address or CIDR block");
        let (address, bits) = match text.split_once('/') {
            Some((address, bits)) => (address, Some(bits)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(bits) => bits.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if bits > max {
            return Err(bad());
        }
        Ok(IpBlock { network, bits })
    }

    pub(super) fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_by_prefix_suffix_or_presence() {
        let p = |t: &str, v: Option<&str>| Pattern::parse(t).matches(v);
        assert!(p("GET", Some("GET")) && !p("GET", Some("get")));
        assert!(p("/admin*", Some("/admin/x")) && !p("/admin*", Some("/adm")));
        assert!(p("*.local", Some("a.local")) && !p("*.local", Some("a.locals")));
        assert!(p("*", Some("")) && !p("*", None));
        assert!(Pattern::parse("Web.Shop").matches_ignore_case(Some("web.shop")));
    }

    #[test]
    fn ip_blocks_contain_their_addresses_only() {
        let block = IpBlock::parse("10.244.1.0/24").expect("parses");
        assert!(block.contains("10.244.1.9".parse().expect("ip")));
        assert!(!block.contains("10.244.2.9".parse().expect("ip")));
        assert!(block.contains("::ffff:10.244.1.9".parse().expect("ip")));
        let one = IpBlock::parse("10.0.0.1").expect("parses");
        assert!(one.contains("10.0.0.1".parse().expect("ip")));
        assert!(!one.contains("10.0.0.2".parse().expect("ip")));
        assert!(
            IpBlock::parse("0.0.0.0/0")
                .expect("any")
                .contains("1.2.3.4".parse().expect("ip"))
        );
        assert!(
            IpBlock::parse("2001:db8::/32")
                .expect("v6")
                .contains("2001:db8::1".parse().expect("ip"))
        );
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", ""] {
            assert!(IpBlock::parse(bad).is_err(), "{bad}");
        }
    }
}
