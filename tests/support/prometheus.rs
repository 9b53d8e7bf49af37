//! A reader of the Prometheus text exposition format, strict enough to
//! fail a test on a malformed line, for tests that scrape `/metrics`.
#![allow(dead_code)]

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed scrape. Parsing panics on any line that is not valid text
/// exposition format, and on a sample whose family was not declared with
/// `# HELP` and `# TYPE` before it.
#[derive(Debug)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// The `# TYPE` of each family.
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut types = BTreeMap::new();
        let mut helped = Vec::new();
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP has text");
                assert!(!help.trim().is_empty(), "empty HELP: {line}");
                helped.push(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "unknown type: {line}"
                );
                types.insert(name.to_string(), kind.to_string());
            } else {
                let sample = sample(line);
                let family = family_of(&sample.name, &types);
                assert!(
                    helped.contains(&family),
                    "{} has no HELP before it",
                    sample.name
                );
                samples.push(sample);
            }
        }
        Scrape { samples, types }
    }

    /// The value of the sample with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut found = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == wanted);
        let first = found.next()?;
        assert!(found.next().is_none(), "{name} {labels:?} appears twice");
        Some(first.value)
    }

    /// As [`Scrape::value`], with an absent series read as zero (a counter
    /// with labels appears once it has counted something).
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// The sum over every series of `name` whose labels include these.
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k) == Some(&v.to_string()))
            })
            .map(|s| s.value)
            .sum()
    }

    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// Checks every histogram: buckets never decrease, and `+Inf` equals
    /// `_count`.
    pub fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            for count in self.series(&format!("{family}_count")) {
                let mut buckets: Vec<(f64, f64)> = self
                    .series(&format!("{family}_bucket"))
                    .into_iter()
                    .filter(|b| same_series(&b.labels, &count.labels))
                    .map(|b| (bound(&b.labels["le"]), b.value))
                    .collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                assert!(
                    buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family} {:?}: buckets decrease: {buckets:?}",
                    count.labels
                );
                let inf = buckets.last().expect("buckets");
                assert!(inf.0.is_infinite(), "{family}: no +Inf bucket");
                assert_eq!(inf.1, count.value, "{family}: +Inf is not _count");
            }
        }
    }
}

fn same_series(bucket: &BTreeMap<String, String>, series: &BTreeMap<String, String>) -> bool {
    let mut without_le = bucket.clone();
    without_le.remove("le");
    &without_le == series
}

fn bound(le: &str) -> f64 {
    if le == "+Inf" {
        f64::INFINITY
    } else {
        le.parse().expect("le is a number")
    }
}

/// The family a sample belongs to: its name, or a histogram's name for
/// its `_bucket`, `_sum` and `_count` lines.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return base.to_string();
            }
        }
    }
    assert!(types.contains_key(name), "{name} has no TYPE before it");
    name.to_string()
}

fn sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("not a value: {line}"));
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let inner = rest.strip_suffix('}').expect("labels end with }");
            (name, labels(inner, line))
        }
    };
    let valid_name = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    assert!(valid_name && !name.is_empty(), "bad metric name: {line}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `a="x",b="y \"quoted\""` into a map, undoing the format's escapes.
fn labels(mut text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"").expect("label=\"value\"");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("dangling escape: {line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        text = rest[end + 1..].trim_start_matches(',');
    }
    labels
}
