//! The Gateway API's order among rules attached to one parent: exact paths, then longer
//! prefixes (regexes between the two, longest first), then a method match, then more header
//! matches, then more query matches; ties go to the oldest route, then by namespace/name, then
//! to the earlier rule and match. An identical match of a later route is shadowed: reported.

use std::cmp::Reverse;

use mesh_proto::config::v1::{RouteMatch, route_match::Path};

use super::{
    super::{
        problem::Problem,
        rules::{HttpRule, RouteSet},
    },
    model::RouteModel,
};

/// One match of one rule of one route, ready to order.
pub(crate) struct Candidate<'a> {
    /// The route.
    pub route: &'a RouteModel,
    /// The rule's index in the route.
    pub rule_index: usize,
    /// The match's index in the rule.
    pub match_index: usize,
    /// The compiled rule for this match.
    pub rule: HttpRule,
}

/// How specific a match is; smaller sorts first.
type MatchKey = (
    u8,
    Reverse<usize>,
    Reverse<bool>,
    Reverse<usize>,
    Reverse<usize>,
);

fn match_key(m: &RouteMatch) -> MatchKey {
    let (kind, length) = match &m.path {
        Some(Path::Exact(p)) => (0, p.len()),
        Some(Path::Regex(r)) => (1, r.len()),
        Some(Path::Prefix(p)) => (2, p.len()),
        None => (2, 1),
    };
    (
        kind,
        Reverse(length),
        Reverse(!m.method.is_empty()),
        Reverse(m.headers.len()),
        Reverse(m.query_params.len()),
    )
}

/// Orders candidates by precedence and gathers them into a route set; later identical
/// matches from other routes are reported as shadowed.
pub(crate) fn into_route_set(
    mut candidates: Vec<Candidate<'_>>,
    problems: &mut Vec<Problem>,
) -> RouteSet {
    candidates.sort_by(|a, b| {
        match_key(&a.rule.matcher)
            .cmp(&match_key(&b.rule.matcher))
            .then_with(|| {
                let created =
                    |c: &Candidate<'_>| (c.route.created.is_none(), c.route.created.clone());
                created(a).cmp(&created(b))
            })
            .then_with(|| a.route.origin.cmp(&b.route.origin))
            .then_with(|| (a.rule_index, a.match_index).cmp(&(b.rule_index, b.match_index)))
    });
    let mut origins = Vec::new();
    let mut http: Vec<HttpRule> = Vec::with_capacity(candidates.len());
    let mut owners: Vec<&RouteModel> = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        if !origins.contains(&candidate.route.origin) {
            origins.push(candidate.route.origin.clone());
        }
        let earlier = http.iter().zip(&owners).find(|(rule, _)| {
            rule.matcher == candidate.rule.matcher && rule.scope == candidate.rule.scope
        });
        if let Some((_, owner)) = earlier {
            if owner.origin != candidate.route.origin {
                problems.push(Problem::warning(
                    &candidate.route.origin,
                    format!(
                        "spec.rules[{}].matches[{}]",
                        candidate.rule_index, candidate.match_index
                    ),
                    format!(
                        "the match conflicts with an identical match of {}, which takes precedence (older, or first by namespace/name); this one never applies",
                        owner.origin
                    ),
                    "make the matches differ, or remove one",
                ));
            }
            continue;
        }
        http.push(candidate.rule);
        owners.push(candidate.route);
    }
    RouteSet {
        origins,
        http,
        tcp: Vec::new(),
        tls: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use mesh_proto::config::v1::{HeaderMatch, QueryParamMatch};

    use super::*;

    fn path(p: Path) -> RouteMatch {
        RouteMatch {
            path: Some(p),
            ..RouteMatch::default()
        }
    }

    #[test]
    fn exact_beats_regex_beats_longer_prefix_beats_shorter() {
        let mut keys = [
            match_key(&path(Path::Prefix("/".into()))),
            match_key(&path(Path::Prefix("/api/v1".into()))),
            match_key(&path(Path::Exact("/api".into()))),
            match_key(&path(Path::Regex("/a.*".into()))),
            match_key(&path(Path::Prefix("/api".into()))),
        ];
        keys.sort();
        assert_eq!(
            keys,
            [
                match_key(&path(Path::Exact("/api".into()))),
                match_key(&path(Path::Regex("/a.*".into()))),
                match_key(&path(Path::Prefix("/api/v1".into()))),
                match_key(&path(Path::Prefix("/api".into()))),
                match_key(&path(Path::Prefix("/".into()))),
            ]
        );
    }

    #[test]
    fn then_method_then_header_count_then_query_count() {
        let base = path(Path::Prefix("/".into()));
        let method = RouteMatch {
            method: "GET".into(),
            ..base.clone()
        };
        let header = HeaderMatch::default();
        let two_headers = RouteMatch {
            headers: vec![header.clone(), header.clone()],
            ..base.clone()
        };
        let one_header = RouteMatch {
            headers: vec![header],
            ..base.clone()
        };
        let query = RouteMatch {
            query_params: vec![QueryParamMatch::default()],
            ..base.clone()
        };
        assert!(match_key(&method) < match_key(&two_headers));
        assert!(match_key(&two_headers) < match_key(&one_header));
        assert!(match_key(&one_header) < match_key(&query));
        assert!(match_key(&query) < match_key(&base));
    }
}
