//! Hostname patterns of gateways and routes: exact names, `*.suffix` wildcards and `*`.

/// The hostnames both patterns accept, as one pattern (the more specific one); `None` when
/// they share none.
pub(crate) fn intersect(a: &str, b: &str) -> Option<String> {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if covers(&a, &b) {
        Some(b)
    } else if covers(&b, &a) {
        Some(a)
    } else {
        None
    }
}

/// Whether every hostname `inner` accepts, `outer` accepts too.
fn covers(outer: &str, inner: &str) -> bool {
    if outer == "*" || outer == inner {
        return true;
    }
    match outer.strip_prefix('*') {
        Some(suffix) => inner.len() > suffix.len() && inner.ends_with(suffix),
        None => false,
    }
}

/// Whether `pattern` accepts `hostname` (a pattern too), for composing virtual hosts: the
/// routes of `*.example.com` also serve `shop.example.com`, after its own.
pub(crate) fn accepts(pattern: &str, hostname: &str) -> bool {
    pattern != hostname && covers(pattern, hostname)
}

/// Sort key putting more specific patterns first: exact names, then longer wildcards, `*` last.
pub(crate) fn specificity(pattern: &str) -> (u8, std::cmp::Reverse<usize>) {
    match pattern {
        "*" => (2, std::cmp::Reverse(0)),
        p if p.starts_with('*') => (1, std::cmp::Reverse(p.len())),
        p => (0, std::cmp::Reverse(p.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersections_keep_the_more_specific_pattern() {
        assert_eq!(
            intersect("*", "shop.example.com").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "shop.example.com").as_deref(),
            Some("shop.example.com")
        );
        assert_eq!(
            intersect("*.example.com", "*.shop.example.com").as_deref(),
            Some("*.shop.example.com")
        );
        assert_eq!(intersect("*.example.com", "example.com"), None);
        assert_eq!(intersect("a.example.com", "b.example.com"), None);
        assert_eq!(
            intersect("A.example.com", "a.EXAMPLE.com").as_deref(),
            Some("a.example.com")
        );
    }

    #[test]
    fn wildcards_accept_their_subdomains_only() {
        assert!(accepts("*.example.com", "shop.example.com"));
        assert!(accepts("*", "*.example.com"));
        assert!(!accepts("*.example.com", "*.example.com"));
        assert!(!accepts("shop.example.com", "*.example.com"));
        let mut patterns = vec![
            "*",
            "*.example.com",
            "shop.example.com",
            "*.shop.example.com",
        ];
        patterns.sort_by_key(|p| specificity(p));
        assert_eq!(
            patterns,
            [
                "shop.example.com",
                "*.shop.example.com",
                "*.example.com",
                "*"
            ]
        );
    }
}
