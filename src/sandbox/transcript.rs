//! A plain-text rendering of what the bot posted, channel by channel and
//! thread by thread, for `cordon demo` and for test failure messages.
//!
//! Adaptive Cards are shown by their content: the text of every
//! `TextBlock`, FactSet facts as `Title: value`, inputs as blanks and
//! actions as `[Title]`. Elements hidden with `isVisible: false` and images
//! are left out. Replies are indented under their thread's first message.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::connector::PostedMessage;

const CARD_TYPE: &str = "application/vnd.microsoft.card.adaptive";
const BODY_INDENT: &str = "    ";
const REPLY_INDENT: &str = "    ";

/// The Adaptive Cards attached to an activity.
pub fn adaptive_cards(activity: &Value) -> impl Iterator<Item = &Value> {
    activity
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("contentType").and_then(Value::as_str) == Some(CARD_TYPE))
        .filter_map(|a| a.get("content"))
}

/// Renders every conversation, thread and message in posting order.
pub fn render(messages: &[PostedMessage]) -> String {
    if messages.is_empty() {
        return "(nothing was posted)\n".to_string();
    }
    let mut out = String::new();
    for channel in in_order(messages.iter().map(|m| m.channel_id.as_str())) {
        out.push_str(&format!("== {channel} ==\n"));
        let in_channel: Vec<&PostedMessage> = messages
            .iter()
            .filter(|m| m.channel_id == channel)
            .collect();
        for root in in_order(in_channel.iter().map(|m| m.thread_root.as_str())) {
            out.push('\n');
            render_thread(&mut out, root, &in_channel);
        }
        out.push('\n');
    }
    out
}

/// Distinct values in order of first appearance.
fn in_order<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    seen
}

fn render_thread(out: &mut String, root: &str, messages: &[&PostedMessage]) {
    let thread: Vec<&&PostedMessage> = messages.iter().filter(|m| m.thread_root == root).collect();
    match thread.iter().find(|m| m.is_root()) {
        Some(first) => render_message(out, first, ""),
        None => out.push_str(&format!("(thread #{root}, started by someone else)\n")),
    }
    for reply in thread.iter().filter(|m| !m.is_root()) {
        render_message(out, reply, REPLY_INDENT);
    }
}

fn render_message(out: &mut String, message: &PostedMessage, indent: &str) {
    let marker = if message.is_root() { "" } else { "↳ " };
    out.push_str(&format!("{indent}{marker}{}\n", header(message)));
    let body = if message.deleted {
        vec!["(this message was deleted)".to_string()]
    } else {
        message_lines(&message.activity)
    };
    for line in body {
        out.push_str(&format!("{indent}{BODY_INDENT}{line}\n"));
    }
}

fn header(message: &PostedMessage) -> String {
    let sender = message
        .activity
        .pointer("/from/name")
        .and_then(Value::as_str)
        .map(|name| format!(" {name}"))
        .unwrap_or_default();
    let edits = message.versions.len().saturating_sub(1);
    let edited = match edits {
        0 => String::new(),
        1 => ", updated once".to_string(),
        n => format!(", updated {n} times"),
    };
    format!(
        "[{}]{sender} #{}{edited}",
        clock(message.posted_at),
        message.activity_id
    )
}

fn clock(at: DateTime<Utc>) -> String {
    at.format("%H:%M:%S").to_string()
}

/// One activity as readable text, a line per line of [`message_lines`].
pub fn render_text(activity: &Value) -> String {
    message_lines(activity).join("\n")
}

/// The readable lines of one activity: its text, then its attachments.
pub fn message_lines(activity: &Value) -> Vec<String> {
    let mut lines: Vec<String> = activity
        .get("text")
        .and_then(Value::as_str)
        .map(text_lines)
        .unwrap_or_default();
    let attachments = activity.get("attachments").and_then(Value::as_array);
    for attachment in attachments.into_iter().flatten() {
        let kind = attachment.get("contentType").and_then(Value::as_str);
        match (kind, attachment.get("content")) {
            (Some(CARD_TYPE), Some(card)) => lines.extend(card_lines(card)),
            (kind, _) => lines.push(format!("[attachment: {}]", kind.unwrap_or("unknown"))),
        }
    }
    if lines.is_empty() {
        lines.push("(no content)".to_string());
    }
    lines
}

/// The readable lines of an Adaptive Card.
pub fn card_lines(card: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    for element in array(card, "body") {
        element_lines(element, &mut lines);
    }
    action_line(array(card, "actions"), &mut lines);
    lines
}

fn array<'a>(value: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    value
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn element_lines(element: &Value, lines: &mut Vec<String>) {
    if element.get("isVisible") == Some(&Value::Bool(false)) {
        return;
    }
    let kind = element.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "TextBlock" => lines.extend(text_of(element, "text").map(text_lines).unwrap_or_default()),
        "RichTextBlock" => lines.extend(text_lines(&rich_text(element))),
        "FactSet" => lines.extend(array(element, "facts").map(fact_line)),
        "ActionSet" => action_line(array(element, "actions"), lines),
        "Image" | "Media" => {}
        input if input.starts_with("Input.") => lines.push(input_line(element)),
        _ => {
            for key in ["items", "columns", "rows", "cells"] {
                for child in array(element, key) {
                    element_lines(child, lines);
                }
            }
        }
    }
}

fn text_of<'a>(element: &'a Value, key: &str) -> Option<&'a str> {
    element.get(key).and_then(Value::as_str)
}

fn text_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .map(unescape)
        .collect()
}

/// A line as Teams shows it: a backslash before a punctuation character
/// only keeps that character from being read as Markdown.
fn unescape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match chars.peek() {
            Some(next) if c == '\\' && next.is_ascii_punctuation() => {
                out.push(*next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

fn rich_text(element: &Value) -> String {
    array(element, "inlines")
        .filter_map(|inline| inline.as_str().or_else(|| text_of(inline, "text")))
        .collect()
}

fn fact_line(fact: &Value) -> String {
    let title = text_of(fact, "title").unwrap_or("").trim_end_matches(':');
    let value = text_of(fact, "value").unwrap_or("");
    format!("{title}: {}", unescape(value))
}

fn input_line(input: &Value) -> String {
    let label = text_of(input, "label")
        .or_else(|| text_of(input, "placeholder"))
        .or_else(|| text_of(input, "id"))
        .unwrap_or("input");
    format!("{label}: ________")
}

fn action_line<'a>(actions: impl Iterator<Item = &'a Value>, lines: &mut Vec<String>) {
    let titles: Vec<String> = actions
        .filter_map(|action| text_of(action, "title"))
        .map(|title| format!("[{title}]"))
        .collect();
    if !titles.is_empty() {
        lines.push(titles.join(" "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(id: &str, root: &str, activity: Value) -> PostedMessage {
        let channel = "19:soc@thread.tacv2";
        PostedMessage {
            conversation_id: format!("{channel};messageid={root}"),
            channel_id: channel.to_string(),
            thread_root: root.to_string(),
            activity_id: id.to_string(),
            reply_to: None,
            versions: vec![activity.clone()],
            activity,
            posted_at: Utc::now(),
            updated_at: None,
            deleted: false,
        }
    }

    fn approval_card() -> Value {
        json!({
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [
                {"type": "TextBlock", "text": "Containment request", "weight": "Bolder"},
                {"type": "Container", "items": [
                    {"type": "FactSet", "facts": [
                        {"title": "Target", "value": "alice@contoso.com"},
                        {"title": "Incident:", "value": "INC0010001"}
                    ]}
                ]},
                {"type": "TextBlock", "text": "secret", "isVisible": false},
                {"type": "Image", "url": "https://example.invalid/x.png"},
                {"type": "Input.Text", "id": "reason", "label": "Reason"}
            ],
            "actions": [
                {"type": "Action.Execute", "title": "Approve", "verb": "approve"},
                {"type": "Action.Execute", "title": "Reject", "verb": "reject"}
            ]
        })
    }

    #[test]
    fn a_card_shows_its_texts_facts_inputs_and_actions() {
        let lines = card_lines(&approval_card());
        assert_eq!(
            lines,
            vec![
                "Containment request",
                "Target: alice@contoso.com",
                "Incident: INC0010001",
                "Reason: ________",
                "[Approve] [Reject]",
            ]
        );
    }

    #[test]
    fn markdown_escapes_read_as_the_characters_teams_shows() {
        let card = json!({"type": "AdaptiveCard", "body": [
            {"type": "TextBlock", "text": r"Alice \(alice@contoso.com\) \*not bold\*, C:\\temp"},
            {"type": "FactSet", "facts": [{"title": "Rule", "value": r"privileged.group\_member"}]}
        ]});
        assert_eq!(
            card_lines(&card),
            vec![
                r"Alice (alice@contoso.com) *not bold*, C:\temp",
                "Rule: privileged.group_member",
            ]
        );
    }

    #[test]
    fn columns_and_action_sets_inside_a_card_are_read() {
        let card = json!({"type": "AdaptiveCard", "body": [
            {"type": "ColumnSet", "columns": [
                {"type": "Column", "items": [{"type": "TextBlock", "text": "left"}]},
                {"type": "Column", "items": [{"type": "TextBlock", "text": "right"}]}
            ]},
            {"type": "ActionSet", "actions": [{"type": "Action.OpenUrl", "title": "Open ticket"}]}
        ]});
        assert_eq!(card_lines(&card), vec!["left", "right", "[Open ticket]"]);
    }

    #[test]
    fn replies_are_indented_under_their_thread_root() {
        let card = json!({"type": "message", "attachments": [
            {"contentType": CARD_TYPE, "content": approval_card()}
        ]});
        let mut root = message("100", "100", card);
        root.versions.push(root.activity.clone());
        let reply = message(
            "101",
            "100",
            json!({"type": "message", "text": "Approved by Oscar"}),
        );
        let text = render(&[root, reply]);

        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "== 19:soc@thread.tacv2 ==");
        assert!(lines[2].ends_with("#100, updated once"), "{text}");
        assert!(lines.contains(&"    Target: alice@contoso.com"), "{text}");
        let reply_header = lines.iter().position(|l| l.contains("↳")).unwrap();
        assert!(lines[reply_header].starts_with("    ↳ ["), "{text}");
        assert_eq!(lines[reply_header + 1], "        Approved by Oscar");
    }

    #[test]
    fn replies_in_a_thread_started_elsewhere_are_still_shown() {
        let reply = message(
            "7",
            "5",
            json!({"type": "message", "text": "status: pending"}),
        );
        let text = render(&[reply]);
        assert!(
            text.contains("(thread #5, started by someone else)"),
            "{text}"
        );
        assert!(text.contains("        status: pending"), "{text}");
    }

    #[test]
    fn a_deleted_or_empty_message_says_so() {
        let mut gone = message("1", "1", json!({"type": "message", "text": "x"}));
        gone.deleted = true;
        let empty = message("2", "2", json!({"type": "typing"}));
        let text = render(&[gone, empty]);
        assert!(text.contains("(this message was deleted)"));
        assert!(text.contains("(no content)"));
        assert!(!text.contains("    x\n"));
    }
}
