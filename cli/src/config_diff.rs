//! Compares, per config type, what the control plane would send a proxy (`/debug/config`) with
//! what the proxy runs (`/config_dump`): both serve `{"config": ProxyConfig}` as JSON, so the
//! entries of each type are sorted by name and their pretty JSON compared, with a unified diff
//! when they differ.

use serde_json::Value;
use similar::TextDiff;

/// One list of the config model: its title, its JSON field and the field naming each entry.
#[derive(Debug, Clone, Copy)]
pub struct ConfigType {
    /// As printed: "Clusters".
    pub title: &'static str,
    field: &'static str,
    key: &'static str,
}

/// Every type, in the order `proxy-status POD` prints them.
pub const TYPES: [ConfigType; 5] = [
    ConfigType {
        title: "Clusters",
        field: "clusters",
        key: "name",
    },
    ConfigType {
        title: "Listeners",
        field: "listeners",
        key: "name",
    },
    ConfigType {
        title: "Routes",
        field: "routes",
        key: "name",
    },
    ConfigType {
        title: "Endpoints",
        field: "endpoints",
        key: "cluster",
    },
    ConfigType {
        title: "Telemetry",
        field: "telemetry",
        key: "name",
    },
];

/// Whether one type is the same on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    /// Same entries, field by field.
    Match,
    /// A unified diff from the control plane's entries to the proxy's.
    Differ(String),
}

/// Names the two sides in a diff's header.
#[derive(Debug, Clone, Copy)]
pub struct Sides<'a> {
    /// What the control plane would send.
    pub control_plane: &'a str,
    /// What the proxy runs.
    pub proxy: &'a str,
}

/// Compares the `config` objects of the two documents, type by type.
pub fn compare(
    control_plane: &Value,
    proxy: &Value,
    sides: Sides<'_>,
) -> Vec<(ConfigType, Comparison)> {
    TYPES
        .into_iter()
        .map(|ty| {
            let expected = ty.entries(control_plane);
            let running = ty.entries(proxy);
            let comparison = if expected == running {
                Comparison::Match
            } else {
                Comparison::Differ(
                    TextDiff::from_lines(&expected, &running)
                        .unified_diff()
                        .context_radius(3)
                        .header(sides.control_plane, sides.proxy)
                        .to_string(),
                )
            };
            (ty, comparison)
        })
        .collect()
}

// === impl ConfigType ===

impl ConfigType {
    /// The type's entries sorted by name, as pretty JSON (an absent list is an empty one).
    fn entries(self, document: &Value) -> String {
        let mut list = match &document["config"][self.field] {
            Value::Null => Vec::new(),
            Value::Array(entries) => entries.clone(),
            other => vec![other.clone()],
        };
        list.sort_by(|a, b| {
            let key = |v: &Value| v[self.key].as_str().unwrap_or_default().to_owned();
            key(a).cmp(&key(b))
        });
        let mut text = serde_json::to_string_pretty(&list).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SIDES: Sides<'static> = Sides {
        control_plane: "control plane",
        proxy: "proxy",
    };

    #[test]
    fn order_and_absent_lists_do_not_count_as_differences() {
        let cp = json!({"generation": 3, "config": {
            "clusters": [{"name": "b"}, {"name": "a", "connectTimeout": "1s"}],
        }});
        let proxy = json!({"version": 9, "config": {
            "clusters": [{"name": "a", "connectTimeout": "1s"}, {"name": "b"}],
            "routes": [],
        }});
        let results = compare(&cp, &proxy, SIDES);
        let titles: Vec<_> = results.iter().map(|(t, _)| t.title).collect();
        assert_eq!(
            titles,
            ["Clusters", "Listeners", "Routes", "Endpoints", "Telemetry"]
        );
        assert!(results.iter().all(|(_, c)| *c == Comparison::Match));
    }

    #[test]
    fn a_changed_field_shows_as_a_unified_diff_of_that_type_only() {
        let cp = json!({"config": {
            "clusters": [{"name": "web"}],
            "endpoints": [{"cluster": "web", "endpoints": [{"address": "10.0.0.1:80"}]}],
        }});
        let proxy = json!({"config": {
            "clusters": [{"name": "web"}],
            "endpoints": [{"cluster": "web", "endpoints": [{"address": "10.0.0.2:80"}]}],
        }});
        let results = compare(&cp, &proxy, SIDES);
        assert_eq!(results[0].1, Comparison::Match);
        let Comparison::Differ(diff) = &results[3].1 else {
            panic!("endpoints differ: {results:?}");
        };
        assert!(diff.starts_with("--- control plane\n+++ proxy\n"), "{diff}");
        assert!(
            diff.contains("-        \"address\": \"10.0.0.1:80\""),
            "{diff}"
        );
        assert!(
            diff.contains("+        \"address\": \"10.0.0.2:80\""),
            "{diff}"
        );
    }
}
