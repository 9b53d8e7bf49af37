//! The small vocabularies the policy speaks: where a request came from, how
//! risky it was said to be, what kind of account the target is, and whether
//! the request contains or releases.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A word that is not one of a vocabulary's values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("'{given}' is not a valid {what}; expected one of: {expected}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub given: String,
    pub expected: &'static str,
}

macro_rules! vocabulary {
    (
        $(#[$doc:meta])*
        $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize,
        )]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The lowercase word used in configuration and commands.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let word = s.trim().to_ascii_lowercase();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == word)
                    .ok_or_else(|| UnknownValue {
                        what: $what,
                        given: s.to_owned(),
                        expected: concat!($($text, " "),+),
                    })
            }
        }
    };
}

vocabulary! {
    /// Where a request came from.
    Source, "source" {
        Teams => "teams",
        ServiceNow => "servicenow",
        Api => "api",
        Siem => "siem",
    }
}

vocabulary! {
    /// The risk the requester (or the SIEM) attached to a request.
    /// Ordered: `Low < Medium < High`.
    Risk, "risk" {
        Low => "low",
        Medium => "medium",
        High => "high",
    }
}

vocabulary! {
    /// What kind of account the target is; decides runbook and approvals.
    Classification, "classification" {
        Standard => "standard",
        Privileged => "privileged",
        ServiceAccount => "service_account",
    }
}

vocabulary! {
    /// Whether a request contains an account or releases it again.
    RequestKind, "request kind" {
        Containment => "containment",
        Release => "release",
    }
}

impl PartialOrd for Risk {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Risk {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_case_insensitively_and_round_trip() {
        assert_eq!("SIEM".parse::<Source>(), Ok(Source::Siem));
        assert_eq!(Source::ServiceNow.to_string(), "servicenow");
        assert!("email".parse::<Source>().is_err());
    }

    #[test]
    fn risk_is_ordered_low_to_high() {
        assert!(Risk::Low < Risk::Medium && Risk::Medium < Risk::High);
    }

    #[test]
    fn serde_uses_the_same_words() {
        let json = serde_json::to_string(&Source::ServiceNow).unwrap();
        assert_eq!(json, "\"servicenow\"");
        let kind: Classification = serde_json::from_str("\"service_account\"").unwrap();
        assert_eq!(kind, Classification::ServiceAccount);
    }
}
