//! Incidents as the Table API returns them, and the updates Cordon makes.
//!
//! ServiceNow sends empty strings for empty fields and, when reference
//! links are not excluded, `{"link", "value"}` objects for reference
//! fields; both are read into plain `Option<String>` here.

use serde::{Deserialize, Deserializer, Serialize};

/// Longest incident number accepted.
const MAX_NUMBER_LEN: usize = 40;

/// An incident record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub sys_id: String,
    pub number: String,
    /// The state value as ServiceNow stores it, such as `"2"`.
    #[serde(deserialize_with = "required_field")]
    pub state: String,
    #[serde(default, deserialize_with = "optional_field")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "optional_field")]
    pub subcategory: Option<String>,
    #[serde(default, deserialize_with = "optional_field")]
    pub short_description: Option<String>,
    #[serde(default, deserialize_with = "optional_field")]
    pub description: Option<String>,
    /// The caller's `sys_user` sys_id.
    #[serde(default, deserialize_with = "optional_field")]
    pub caller_id: Option<String>,
    /// The custom `u_affected_user` field.
    #[serde(
        default,
        rename = "u_affected_user",
        deserialize_with = "optional_field"
    )]
    pub affected_user: Option<String>,
}

/// The fields Cordon writes on an incident; absent ones are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IncidentUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<IncidentState>,
    /// Appended to the journal; it never replaces earlier notes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_notes: Option<String>,
}

impl IncidentUpdate {
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.work_notes.is_none()
    }
}

/// The out-of-the-box incident states; sent as their numeric value in a
/// string, as the Table API stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentState {
    New = 1,
    InProgress = 2,
    /// ServiceNow requires a `hold_reason` alongside this state.
    OnHold = 3,
    Resolved = 6,
    Closed = 7,
    Canceled = 8,
}

impl IncidentState {
    /// The stored value, such as `"2"`.
    pub fn value(self) -> String {
        (self as u8).to_string()
    }
}

impl Serialize for IncidentState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value())
    }
}

/// Whether `number` looks like an incident number (letters then digits,
/// such as `INC0012345`), so that it cannot carry encoded-query syntax.
pub fn is_incident_number(number: &str) -> bool {
    let digits = number.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let letters = number.len() - digits.len();
    number.len() <= MAX_NUMBER_LEN
        && letters > 0
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `sys_id` can be put in a path as it is: ServiceNow's sys_ids
/// are 32 hex digits; letters and digits are accepted.
pub fn is_sys_id(sys_id: &str) -> bool {
    !sys_id.is_empty() && sys_id.len() <= 64 && sys_id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A field value: a string, a number, null, or a reference object.
#[derive(Deserialize)]
#[serde(untagged)]
enum FieldValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
    Reference { value: Option<String> },
    Null,
}

impl FieldValue {
    fn into_text(self) -> Option<String> {
        let text = match self {
            Self::Text(text) => text,
            Self::Number(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
            Self::Reference { value } => value?,
            Self::Null => return None,
        };
        (!text.is_empty()).then_some(text)
    }
}

fn optional_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(FieldValue::deserialize(d)?.into_text())
}

fn required_field<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(FieldValue::deserialize(d)?.into_text().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_api_record_reads_with_empty_and_reference_fields() {
        let body = r#"{"sys_id":"a1b2","number":"INC0010002","state":"2",
            "category":"","subcategory":null,
            "short_description":"Phish","caller_id":{"link":"x","value":"c9"},
            "u_affected_user":"alice@contoso.com","impact":"2"}"#;
        let incident: Incident = serde_json::from_str(body).unwrap();
        assert_eq!(incident.state, "2");
        assert_eq!(incident.category, None);
        assert_eq!(incident.subcategory, None);
        assert_eq!(incident.caller_id.as_deref(), Some("c9"));
        assert_eq!(incident.affected_user.as_deref(), Some("alice@contoso.com"));
        assert_eq!(incident.description, None);
    }

    #[test]
    fn update_sends_state_as_a_string_and_skips_absent_fields() {
        let update = IncidentUpdate {
            state: Some(IncidentState::InProgress),
            work_notes: None,
        };
        assert_eq!(serde_json::to_string(&update).unwrap(), r#"{"state":"2"}"#);
        assert_eq!(IncidentState::Canceled.value(), "8");
    }

    #[test]
    fn incident_numbers_are_letters_then_digits() {
        for good in ["INC0012345", "SIR0001001", "inc1"] {
            assert!(is_incident_number(good), "{good}");
        }
        for bad in [
            "",
            "INC",
            "0012",
            "INC001^ORnumber=INC2",
            "INC 1",
            "INC1=1",
            "INC1A",
            "ΙNC1",
        ] {
            assert!(!is_incident_number(bad), "{bad}");
        }
    }

    #[test]
    fn sys_ids_with_path_or_query_characters_are_refused() {
        assert!(is_sys_id("9d385017c611228701d22104cc95c371"));
        for bad in ["", "../x", "a?b", "a b", "a%2F"] {
            assert!(!is_sys_id(bad), "{bad}");
        }
    }
}
