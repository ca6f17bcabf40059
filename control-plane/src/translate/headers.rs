//! Header changes as routes write them, checked: a name or value HTTP cannot carry is reported
//! and left out, so a proxy is never sent a change it would refuse (and NACK).

use http::{HeaderName, HeaderValue};
use mesh_proto::config::v1::HeaderChanges;

use super::problem::Report;

const NAME_HINT: &str = "a header name is a token: letters, digits and !#$%&'*+-.^_`|~";
const VALUE_HINT: &str = "a header value holds no control characters such as line breaks";

/// `changes` without the entries whose name or value is not valid HTTP, each reported.
pub(crate) fn checked(changes: HeaderChanges, at: &str, report: &mut Report<'_>) -> HeaderChanges {
    let mut pairs = |map: std::collections::BTreeMap<String, String>, op: &str| {
        map.into_iter()
            .filter(|(name, value)| {
                valid_name(name, &format!("{at}.{op}"), report)
                    && valid_value(name, value, &format!("{at}.{op}"), report)
            })
            .collect()
    };
    HeaderChanges {
        set: pairs(changes.set, "set"),
        add: pairs(changes.add, "add"),
        remove: changes
            .remove
            .into_iter()
            .filter(|name| valid_name(name, &format!("{at}.remove"), report))
            .collect(),
    }
}

fn valid_name(name: &str, at: &str, report: &mut Report<'_>) -> bool {
    let valid = HeaderName::from_bytes(name.as_bytes()).is_ok();
    if !valid {
        report.error(
            at,
            format!("{name:?} is not a valid header name"),
            NAME_HINT,
        );
    }
    valid
}

fn valid_value(name: &str, value: &str, at: &str, report: &mut Report<'_>) -> bool {
    let valid = HeaderValue::from_str(value).is_ok();
    if !valid {
        report.error(
            at,
            format!("the value of header {name:?} is not a valid header value"),
            VALUE_HINT,
        );
    }
    valid
}
