//! The Bot Framework activity, as far as Cordon reads and writes it.
//!
//! Only the fields Cordon uses are typed; everything else an activity carries
//! is kept in `extra` so that an activity read and written again loses
//! nothing. Parsing never trusts these values: who sent an activity is known
//! only after `botframework::auth` has checked its token.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The content type of an Adaptive Card attachment and invoke answer.
pub const ADAPTIVE_CARD: &str = "application/vnd.microsoft.card.adaptive";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<ChannelAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<ConversationAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<ChannelAccount>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entities: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChannelAccount {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aad_object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationAccount {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_group: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub content_type: String,
    #[serde(default)]
    pub content: Value,
}

impl Activity {
    /// A plain message. Markdown is left to the client to render.
    pub fn message(text: impl Into<String>) -> Self {
        Self {
            kind: "message".into(),
            text: Some(text.into()),
            text_format: Some("markdown".into()),
            ..Self::default()
        }
    }

    /// A message whose only content is one Adaptive Card. A card is sent
    /// alone so that the message has one id that can be updated later.
    pub fn card(card: Value) -> Self {
        Self {
            kind: "message".into(),
            attachments: Some(vec![Attachment {
                content_type: ADAPTIVE_CARD.into(),
                content: card,
            }]),
            ..Self::default()
        }
    }

    /// The tenant the activity says it comes from: `channelData.tenant.id`,
    /// or the conversation's `tenantId` when the channel data lacks it.
    /// Whether the activity comes from `tenant` (see [`same_tenant`]).
    pub fn is_from_tenant(&self, tenant: &str) -> bool {
        self.tenant_id().is_some_and(|t| same_tenant(t, tenant))
    }

    pub fn tenant_id(&self) -> Option<&str> {
        self.channel_data
            .as_ref()
            .and_then(|data| data.pointer("/tenant/id"))
            .and_then(Value::as_str)
            .or_else(|| self.conversation.as_ref()?.tenant_id.as_deref())
    }

    /// The Teams channel (not the thread) a channel activity belongs to.
    pub fn teams_channel_id(&self) -> Option<&str> {
        self.channel_data
            .as_ref()?
            .pointer("/channel/id")
            .and_then(Value::as_str)
    }

    /// The sender's Entra object id, the only identity Cordon trusts.
    pub fn from_object_id(&self) -> Option<&str> {
        self.from.as_ref()?.aad_object_id.as_deref()
    }

    /// The message text with every `<at>...</at>` mention removed and the
    /// whitespace trimmed, which is what a command parser wants to read.
    pub fn text_without_mentions(&self) -> String {
        let mut text = self.text.clone().unwrap_or_default();
        while let Some(start) = text.find("<at>") {
            let Some(len) = text[start..].find("</at>") else {
                break;
            };
            text.replace_range(start..start + len + "</at>".len(), "");
        }
        text.trim().to_string()
    }

    /// The invoke answer body Teams expects for an `adaptiveCard/action`
    /// that replaces the card the user clicked.
    pub fn card_invoke_response(card: Value) -> Value {
        json!({ "statusCode": 200, "type": ADAPTIVE_CARD, "value": card })
    }

    /// The invoke answer body for an action that is refused: Teams shows the
    /// message to the clicker and leaves the card as it was.
    pub fn error_invoke_response(status: u16, code: &str, message: &str) -> Value {
        json!({
            "statusCode": status,
            "type": "application/vnd.microsoft.error",
            "value": { "code": code, "message": message },
        })
    }
}

/// Tenant ids are GUIDs, which Microsoft writes in either case; an empty
/// configured tenant matches nothing.
pub fn same_tenant(given: &str, configured: &str) -> bool {
    !configured.is_empty() && given.eq_ignore_ascii_case(configured)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_removed_from_command_text() {
        let activity = Activity {
            text: Some("<at>Cordon</at> contain a@b.c INC1 why".into()),
            ..Activity::default()
        };
        assert_eq!(activity.text_without_mentions(), "contain a@b.c INC1 why");
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let raw = json!({"type": "message", "locale": "en-US", "id": "1"});
        let activity: Activity = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(serde_json::to_value(&activity).unwrap(), raw);
    }

    #[test]
    fn tenant_comes_from_channel_data_first() {
        let activity: Activity = serde_json::from_value(json!({
            "type": "message",
            "channelData": {"tenant": {"id": "t1"}},
            "conversation": {"id": "c", "tenantId": "t2"}
        }))
        .unwrap();
        assert_eq!(activity.tenant_id(), Some("t1"));
    }
}
