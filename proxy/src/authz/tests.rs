//! Istio's authorization semantics, case by case.

use http::HeaderMap;
use mesh_proto::config::v1::{
    AuthorizationCondition, AuthorizationOperation, AuthorizationPolicy, AuthorizationRule,
    AuthorizationSource, authorization_policy::Action,
};

use super::*;

const SLEEP: &str = "spiffe://cluster.local/ns/shop/sa/sleep";
const OTHER: &str = "spiffe://cluster.local/ns/other/sa/default";

fn policy(name: &str, action: Action, rules: Vec<AuthorizationRule>) -> AuthorizationPolicy {
    AuthorizationPolicy {
        name: name.to_owned(),
        action: action.into(),
        rules,
    }
}

fn from_principals(principals: &[&str]) -> AuthorizationSource {
    AuthorizationSource {
        principals: principals.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    }
}

fn to(methods: &[&str], paths: &[&str]) -> AuthorizationOperation {
    AuthorizationOperation {
        methods: methods.iter().map(|m| (*m).to_owned()).collect(),
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    }
}

fn authorizer(policies: Vec<AuthorizationPolicy>) -> Authorizer {
    let mut errors = Vec::new();
    let authorizer = Authorizer::compile(&policies, "listener", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    authorizer
}

/// Checks an HTTP request from `peer`.
fn http(a: &Authorizer, peer: Option<&str>, method: &str, path: &str) -> Decision {
    let headers = HeaderMap::new();
    a.check(&Facts {
        peer,
        source: "10.244.1.3".parse().expect("ip"),
        destination: "10.244.2.4:8080".parse().expect("addr"),
        http: Some(HttpFacts {
            method,
            path,
            host: "web.shop:80",
            headers: &headers,
        }),
    })
}

/// Checks a TCP connection from `peer` to `port`.
fn tcp(a: &Authorizer, peer: Option<&str>, port: u16) -> Decision {
    a.check(&Facts {
        peer,
        source: "10.244.1.3".parse().expect("ip"),
        destination: format!("10.244.2.4:{port}").parse().expect("addr"),
        http: None,
    })
}

#[test]
fn no_policy_allows_and_an_empty_allow_policy_denies_everything() {
    assert_eq!(http(&authorizer(vec![]), None, "GET", "/"), Decision::Allow);
    let deny_all = authorizer(vec![policy("shop/deny-all", Action::Allow, vec![])]);
    assert_eq!(
        http(&deny_all, Some(SLEEP), "GET", "/"),
        Decision::Deny(None)
    );
    let allow_all = authorizer(vec![policy(
        "shop/all",
        Action::Allow,
        vec![Default::default()],
    )]);
    assert_eq!(http(&allow_all, None, "GET", "/"), Decision::Allow);
}

#[test]
fn sleep_may_get_but_not_post_admin_and_other_namespaces_are_denied() {
    let a = authorizer(vec![
        policy(
            "shop/web",
            Action::Allow,
            vec![AuthorizationRule {
                from: vec![from_principals(&["cluster.local/ns/shop/sa/sleep"])],
                to: vec![to(&["GET"], &[])],
                when: vec![],
            }],
        ),
        policy(
            "shop/no-other",
            Action::Deny,
            vec![AuthorizationRule {
                from: vec![AuthorizationSource {
                    namespaces: vec!["other".into()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        ),
    ]);
    assert_eq!(http(&a, Some(SLEEP), "GET", "/"), Decision::Allow);
    assert_eq!(
        http(&a, Some(SLEEP), "POST", "/admin"),
        Decision::Deny(None)
    );
    assert_eq!(
        http(&a, Some(OTHER), "GET", "/"),
        Decision::Deny(Some("shop/no-other".into()))
    );
    assert_eq!(
        http(&a, None, "GET", "/"),
        Decision::Deny(None),
        "plain text has no principal"
    );
}

#[test]
fn deny_wins_over_allow_and_audit_changes_nothing() {
    let a = authorizer(vec![
        policy("shop/all", Action::Allow, vec![Default::default()]),
        policy(
            "shop/no-admin",
            Action::Deny,
            vec![AuthorizationRule {
                to: vec![to(&[], &["/admin*"])],
                ..Default::default()
            }],
        ),
        policy("shop/audit", Action::Audit, vec![Default::default()]),
    ]);
    assert_eq!(http(&a, Some(SLEEP), "GET", "/ok"), Decision::Allow);
    assert_eq!(
        http(&a, Some(SLEEP), "GET", "/admin/users"),
        Decision::Deny(Some("shop/no-admin".into()))
    );
}

#[test]
fn on_tcp_http_fields_close_an_allow_rule_and_widen_a_deny_rule() {
    let allow_get = authorizer(vec![policy(
        "shop/get",
        Action::Allow,
        vec![AuthorizationRule {
            to: vec![to(&["GET"], &[])],
            ..Default::default()
        }],
    )]);
    assert_eq!(tcp(&allow_get, Some(SLEEP), 9000), Decision::Deny(None));
    let deny_post = authorizer(vec![policy(
        "shop/no-post",
        Action::Deny,
        vec![AuthorizationRule {
            from: vec![from_principals(&["*"])],
            to: vec![to(&["POST"], &[])],
            ..Default::default()
        }],
    )]);
    assert_eq!(
        tcp(&deny_post, Some(SLEEP), 9000),
        Decision::Deny(Some("shop/no-post".into()))
    );
    assert_eq!(
        tcp(&deny_post, None, 9000),
        Decision::Allow,
        "no principal: * does not match"
    );
}

#[test]
fn ports_ip_blocks_and_conditions_narrow_a_rule() {
    let a = authorizer(vec![policy(
        "shop/narrow",
        Action::Allow,
        vec![AuthorizationRule {
            from: vec![AuthorizationSource {
                ip_blocks: vec!["10.244.1.0/24".into()],
                not_principals: vec!["cluster.local/ns/shop/sa/blocked".into()],
                ..Default::default()
            }],
            to: vec![AuthorizationOperation {
                ports: vec!["8080".into()],
                ..Default::default()
            }],
            when: vec![AuthorizationCondition {
                key: "request.headers[x-version]".into(),
                values: vec!["v1".into()],
                not_values: vec![],
            }],
        }],
    )]);
    let mut headers = HeaderMap::new();
    fn facts<'a>(headers: &'a HeaderMap, port: u16, peer: Option<&'a str>) -> Facts<'a> {
        Facts {
            peer,
            source: "10.244.1.3".parse().expect("ip"),
            destination: format!("10.244.2.4:{port}").parse().expect("addr"),
            http: Some(HttpFacts {
                method: "GET",
                path: "/",
                host: "web",
                headers,
            }),
        }
    }
    assert_eq!(
        a.check(&facts(&headers, 8080, Some(SLEEP))),
        Decision::Deny(None),
        "no header"
    );
    headers.insert("x-version", "v1".parse().expect("value"));
    assert_eq!(
        a.check(&facts(&headers, 8080, Some(SLEEP))),
        Decision::Allow
    );
    assert_eq!(
        a.check(&facts(&headers, 9090, Some(SLEEP))),
        Decision::Deny(None),
        "port"
    );
    let blocked = "spiffe://cluster.local/ns/shop/sa/blocked";
    assert_eq!(
        a.check(&facts(&headers, 8080, Some(blocked))),
        Decision::Deny(None)
    );
}

#[test]
fn bad_blocks_and_unknown_keys_are_config_errors() {
    let mut errors = Vec::new();
    Authorizer::compile(
        &[policy(
            "shop/bad",
            Action::Allow,
            vec![AuthorizationRule {
                from: vec![AuthorizationSource {
                    ip_blocks: vec!["10.0.0.0/99".into()],
                    ..Default::default()
                }],
                when: vec![AuthorizationCondition {
                    key: "request.auth.claims[iss]".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        )],
        "listener \"virtualInbound\"",
        &mut errors,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("shop/bad")), "{errors:?}");
}
