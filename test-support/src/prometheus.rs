//! Prometheus text exposition read back in tests: every sample with its name, labels and value,
//! and the sum or single value a test asserts on.

use std::collections::BTreeMap;

/// One sample: `name{label="value",...} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric's name as written on the line (a histogram's `_bucket`, `_sum`, `_count`
    /// included).
    pub name: String,
    /// Its labels, values unescaped.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A page of Prometheus text: its samples in order. Comments and lines that are not a sample
/// are left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Every sample on the page.
    pub samples: Vec<Sample>,
}

// === impl Metrics ===

impl Metrics {
    /// Reads a page of Prometheus text.
    pub fn parse(text: &str) -> Metrics {
        Metrics {
            samples: text.lines().filter_map(Sample::parse).collect(),
        }
    }

    /// The samples of `name` that carry every pair of `labels` (and maybe others).
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |sample| sample.name == name && sample.has(labels))
    }

    /// The sum of the values of the samples of `name` that carry every pair of `labels`; 0
    /// when there are none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|sample| sample.value).sum()
    }

    /// The value of the first sample of `name` that carries every pair of `labels`, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .next()
            .map(|sample| sample.value)
    }
}

// === impl Sample ===

impl Sample {
    /// Reads one line; `None` for a comment, a blank line or anything malformed.
    pub fn parse(line: &str) -> Option<Sample> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = BTreeMap::new();
        if let Some(inside) = rest.strip_prefix('{') {
            rest = inside;
            loop {
                rest = rest.trim_start_matches([' ', ',']);
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = rest.split_once('=')?;
                let (value, after) = quoted(after.trim_start())?;
                labels.insert(label.trim().to_owned(), value);
                rest = after;
            }
        }
        // A timestamp may follow the value.
        let value = rest.split_whitespace().next()?.parse().ok()?;
        (!name.is_empty()).then(|| Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    /// Whether the sample carries every pair of `labels`.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(label, value)| self.labels.get(*label).is_some_and(|v| v == value))
    }
}

/// A label value in double quotes at the start of `text`, unescaped, and the text after it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let mut chars = text.strip_prefix('"')?.char_indices();
    let mut value = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}
