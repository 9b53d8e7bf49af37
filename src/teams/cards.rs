//! The Adaptive Cards Cordon posts in Teams, and the rules they must meet.
//!
//! Each card is a template in `cards/` (with sample data beside it, so it
//! can be opened in the Adaptive Cards Designer), embedded in the binary and
//! parsed once. The functions here turn a [`RequestView`] into the data a
//! template reads: every string a person could have typed is clipped and
//! passed through [`escape_markdown`] first, so a justification cannot add
//! links or formatting to a card. Only machine values (request id, states,
//! approver ids, a checked incident URL) go in as they are.
//!
//! [`check_teams_rules`] states what Teams accepts; tests hold every card to
//! it. This module renders only: it never sends a card and never decides
//! who may act on one.

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{json, Value};

use super::template::Template;
use crate::botframework::activity::ADAPTIVE_CARD;

/// Whether a request contains an account or gives it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKindView {
    Containment,
    Release,
}

/// One approver's decision as the cards show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionView {
    Approved,
    Rejected,
}

/// Where a runbook step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// An approval or rejection already given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalView {
    pub approver_name: String,
    pub decision: DecisionView,
    /// RFC 3339 or a time already written for people.
    pub at: String,
    pub reason: Option<String>,
}

/// A runbook step: planned, running or finished.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    pub label: String,
    pub status: StepStatus,
    pub at: Option<String>,
    /// What happened: the failure reason, or ids worth keeping.
    pub detail: Option<String>,
}

/// Everything a request card shows, already decided by the caller.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    pub request_id: String,
    pub kind: RequestKindView,
    /// Machine name of the state, e.g. `awaiting_approval`.
    pub state: String,
    /// The state for people, e.g. "Awaiting approval".
    pub state_label: String,
    pub target_name: String,
    pub target_upn: String,
    pub target_department: Option<String>,
    /// `standard`, `privileged` or `service_account`.
    pub classification: String,
    pub incident_number: String,
    /// Shown as a button only when it is an absolute http(s) URL.
    pub incident_url: Option<String>,
    pub requester: String,
    pub source: String,
    pub justification: String,
    /// The policy rule that decided.
    pub rule: String,
    pub required_approvals: u32,
    pub approvals: Vec<ApprovalView>,
    pub steps: Vec<StepView>,
    /// Who gets the refreshed, actionable card (`refresh.userIds`).
    pub approver_ids: Vec<String>,
    pub outcome: Option<String>,
    /// Show Approve and Reject: the view of one approver who may decide,
    /// answered to their refresh. The card everyone sees never has them.
    pub can_act: bool,
    /// Show "Approve or reject…" (verb `refresh`): the card everyone sees
    /// while a decision is awaited. Clicking it asks for one's own view.
    pub can_review: bool,
    /// A line for the one viewer this card was rendered for, such as why
    /// they cannot decide.
    pub viewer_note: Option<String>,
    /// Show "Retry remaining steps" (verb `retry`).
    pub can_retry: bool,
}

/// The most characters of one piece of user text a card shows.
///
/// Longer text is cut and ends with "…"; the full text stays in the audit
/// trail. This keeps every card well inside the message limit.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// The most `refresh.userIds` Teams takes; approvers beyond it get the
/// card everyone sees and must refresh it by hand.
pub const MAX_REFRESH_USERS: usize = 60;

/// The largest message, as UTF-16 bytes, a card may travel in.
///
/// Teams refuses bot messages above about 100 KB counted in UTF-16 and
/// advises staying under 80 KB; the 28 KB often quoted is the limit of the
/// Power Automate connector, not of bots. Cordon keeps each whole activity
/// (envelope and card) under 80 KB.
pub const MESSAGE_LIMIT_BYTES: usize = 80 * 1024;

/// Keys whose strings are machine values, never shown as typed text.
const MACHINE_KEYS: [&str; 8] = [
    "request_id",
    "kind",
    "state",
    "classification",
    "status",
    "decision",
    "incident_url",
    "approver_ids",
];

fn template(name: &'static str, json: &str) -> Template {
    Template::parse(name, json).unwrap_or_else(|error| panic!("{error}"))
}

static APPROVAL: LazyLock<Template> =
    LazyLock::new(|| template("approval", include_str!("../../cards/approval.json")));
static PROGRESS: LazyLock<Template> =
    LazyLock::new(|| template("progress", include_str!("../../cards/progress.json")));
static RESULT: LazyLock<Template> =
    LazyLock::new(|| template("result", include_str!("../../cards/result.json")));
static REQUEST_RECEIVED: LazyLock<Template> = LazyLock::new(|| {
    template(
        "request_received",
        include_str!("../../cards/request_received.json"),
    )
});
static REFUSAL: LazyLock<Template> =
    LazyLock::new(|| template("refusal", include_str!("../../cards/refusal.json")));
static HELP: LazyLock<Template> =
    LazyLock::new(|| template("help", include_str!("../../cards/help.json")));

/// The card asking approvers to decide, with Approve and Reject when
/// `can_act`, and a refresh that gives `approver_ids` their own view.
///
/// With no approver id known yet, `refresh.userIds` is left out rather than
/// sent empty: an empty list turns automatic refresh off, while no list
/// lets Teams refresh the card for each viewer (in conversations of up to
/// 60 members), and each viewer is then answered with their own view.
pub fn approval(view: &RequestView) -> Value {
    let mut card = render(&APPROVAL, &card_data(view));
    let no_ids = card
        .pointer("/refresh/userIds")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty);
    if no_ids {
        if let Some(refresh) = card.get_mut("refresh").and_then(Value::as_object_mut) {
            refresh.remove("userIds");
        }
    }
    card
}

/// The live checklist of a request that is under way.
pub fn progress(view: &RequestView) -> Value {
    render(&PROGRESS, &card_data(view))
}

/// The final card: contained, partially contained, failed, rejected,
/// expired or released, with a retry button when `can_retry`.
pub fn result(view: &RequestView) -> Value {
    render(&RESULT, &card_data(view))
}

/// The answer to whoever asked: the request id and where approval waits.
pub fn request_received(view: &RequestView) -> Value {
    render(&REQUEST_RECEIVED, &card_data(view))
}

/// Why a command was refused, and what to do instead.
pub fn refusal(title: &str, reason: &str, hint: Option<&str>) -> Value {
    let data = json!({
        "title": display_text(title),
        "reason": display_text(reason),
        "hint": hint.map(display_text),
    });
    render(&REFUSAL, &data)
}

/// The commands the bot understands, each with an example.
pub fn help() -> Value {
    let commands: Vec<Value> = COMMANDS
        .iter()
        .map(|command| {
            json!({
                "usage": escape_markdown(command.usage),
                "description": escape_markdown(command.description),
                "example": escape_markdown(command.example),
            })
        })
        .collect();
    render(&HELP, &json!({ "commands": commands }))
}

/// A command as the help card lists it.
struct CommandHelp {
    usage: &'static str,
    description: &'static str,
    example: &'static str,
}

const COMMANDS: [CommandHelp; 6] = [
    CommandHelp {
        usage: "contain <upn> <incident> <justification...>",
        description: "Ask for approval to contain an account: \
                      block sign-in and revoke its sessions.",
        example: "contain alice@contoso.com INC0012345 token theft suspected",
    },
    CommandHelp {
        usage: "revoke <upn> <incident> <justification...>",
        description: "Ask for approval to end an account's sessions without \
                      blocking sign-in, for example when sign-in is blocked \
                      already.",
        example: "revoke dave.disabled@contoso.com INC0012346 sessions still active",
    },
    CommandHelp {
        usage: "status <request-id | upn | incident>",
        description: "Show where a request stands.",
        example: "status INC0012345",
    },
    CommandHelp {
        usage: "release <upn> <incident> <reason...>",
        description: "Ask for approval to give a contained account back.",
        example: "release alice@contoso.com INC0012345 \
                  password reset, MFA registered again",
    },
    CommandHelp {
        usage: "policy <upn>",
        description: "Explain what a request for this account would meet \
                      and which rule decides.",
        example: "policy alice@contoso.com",
    },
    CommandHelp {
        usage: "help",
        description: "Show this list.",
        example: "help",
    },
];

/// The data the request templates are expanded over.
///
/// It is the view itself, with typed text clipped and escaped, an incident
/// URL that is not absolute http(s) dropped, and at most
/// [`MAX_REFRESH_USERS`] approver ids.
pub fn card_data(view: &RequestView) -> Value {
    let mut data = serde_json::to_value(view).expect("a view is plain data");
    escape_typed_text(&mut data, None);
    data["incident_url"] = json!(view.incident_url.as_deref().filter(|url| is_web_url(url)));
    let approvers = view.approver_ids.iter().take(MAX_REFRESH_USERS);
    data["approver_ids"] = json!(approvers.collect::<Vec<_>>());
    data
}

fn escape_typed_text(value: &mut Value, key: Option<&str>) {
    match value {
        Value::String(text) if !key.is_some_and(|k| MACHINE_KEYS.contains(&k)) => {
            *text = display_text(text);
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| escape_typed_text(item, key)),
        Value::Object(map) => map
            .iter_mut()
            .for_each(|(key, item)| escape_typed_text(item, Some(key))),
        _ => {}
    }
}

fn is_web_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|url| matches!(url.scheme(), "https" | "http") && url.host().is_some())
}

/// Expands a built-in template; its expressions were checked when parsed.
fn render(template: &Template, data: &Value) -> Value {
    template
        .expand(data)
        .unwrap_or_else(|error| panic!("{error}"))
}

/// Typed text as a card shows it: clipped, then escaped.
fn display_text(text: &str) -> String {
    escape_markdown(&clip(text, MAX_TEXT_CHARS))
}

fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// Makes typed text inert in a TextBlock.
///
/// Backslash-escapes the characters Markdown and Teams read as syntax
/// (``[ ] ( ) * _ ` ~ # > | \ <``), breaks up `${` so the text never looks
/// like a template expression, turns `\r\n` and `\r` into `\n`, keeps at
/// most one blank line in a row, drops other control characters and the
/// invisible direction overrides that can make text read backwards, and
/// trims the ends. A bare URL stays visible as written; clients may still
/// make it clickable, but it cannot hide behind other words.
pub fn escape_markdown(text: &str) -> String {
    let text = tidy_lines(text);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '[' | ']' | '(' | ')' | '*' | '_' | '`' | '~' | '#' | '>' | '|' | '\\' | '<' => {
                out.push('\\');
                out.push(c);
            }
            '$' if chars.peek() == Some(&'{') => out.push_str("$\\"),
            c => out.push(c),
        }
    }
    out
}

/// Line ends made uniform, blank runs cut to one, invisible controls gone.
fn tidy_lines(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len());
    let mut blank_run = 0;
    for line in unified.split('\n') {
        let line: String = line
            .chars()
            .map(|c| if c == '\t' { ' ' } else { c })
            .filter(|c| !c.is_control() && !is_direction_override(*c))
            .collect();
        let line = line.trim_end();
        blank_run = if line.trim().is_empty() {
            blank_run + 1
        } else {
            0
        };
        if blank_run > 1 {
            continue;
        }
        if !out.is_empty() || blank_run == 0 {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim().to_string()
}

fn is_direction_override(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The message activity that carries `card`, as it is sent.
pub fn card_message(card: &Value) -> Value {
    json!({
        "type": "message",
        "attachments": [{ "contentType": ADAPTIVE_CARD, "content": card }],
    })
}

const ELEMENTS: [&str; 16] = [
    "TextBlock",
    "RichTextBlock",
    "Image",
    "ImageSet",
    "Container",
    "ColumnSet",
    "Column",
    "FactSet",
    "ActionSet",
    "Table",
    "Input.Text",
    "Input.Number",
    "Input.Date",
    "Input.Time",
    "Input.Toggle",
    "Input.ChoiceSet",
];

/// Checks a card against what Teams accepts; every problem is listed.
///
/// The rules: an `AdaptiveCard` of version 1.5 or lower; only the elements
/// and actions Teams renders (`Media` is left out: Teams plays only some
/// sources); the fields each needs (`TextBlock.text`, `Image.url`, fact
/// titles and values, input ids, unique, `Action.OpenUrl.url`,
/// `Action.Execute.verb`); a refresh that is an `Action.Execute` for at
/// most [`MAX_REFRESH_USERS`] users; no `null` and no leftover `${`
/// anywhere; and the whole message under [`MESSAGE_LIMIT_BYTES`].
pub fn check_teams_rules(card: &Value) -> Result<(), Vec<String>> {
    let mut check = Check::default();
    check.root(card);
    check.leftovers(card, "card");
    check.size(card);
    if check.problems.is_empty() {
        Ok(())
    } else {
        Err(check.problems)
    }
}

#[derive(Default)]
struct Check {
    problems: Vec<String>,
    input_ids: Vec<String>,
}

impl Check {
    fn problem(&mut self, at: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{at}: {what}"));
    }

    fn root(&mut self, card: &Value) {
        self.card(card, "card");
        match card.get("version").and_then(Value::as_str) {
            Some(version) if version_at_most_1_5(version) => {}
            Some(version) => self.problem("card.version", format!("{version} is above 1.5")),
            None => self.problem("card.version", "missing"),
        }
        if let Some(refresh) = card.get("refresh") {
            self.refresh(refresh);
        }
    }

    fn card(&mut self, card: &Value, at: &str) {
        if card.get("type").and_then(Value::as_str) != Some("AdaptiveCard") {
            self.problem(at, "type is not AdaptiveCard");
        }
        self.each(card, "body", at, Self::element);
        self.each(card, "actions", at, Self::action);
        if let Some(action) = card.get("selectAction") {
            self.action(action, &format!("{at}.selectAction"));
        }
    }

    fn refresh(&mut self, refresh: &Value) {
        let at = "card.refresh";
        match refresh.get("action") {
            Some(action) if action["type"] == "Action.Execute" => {
                self.action(action, &format!("{at}.action"))
            }
            _ => self.problem(at, "action must be an Action.Execute"),
        }
        match refresh.get("userIds") {
            None => {}
            Some(Value::Array(ids)) if ids.len() <= MAX_REFRESH_USERS => {}
            Some(Value::Array(ids)) => self.problem(
                at,
                format!("{} userIds; Teams takes {MAX_REFRESH_USERS}", ids.len()),
            ),
            Some(_) => self.problem(at, "userIds must be an array"),
        }
    }

    /// Runs `visit` on each item of the array `parent[key]`, if any.
    fn each(&mut self, parent: &Value, key: &str, at: &str, visit: fn(&mut Self, &Value, &str)) {
        match parent.get(key) {
            None => {}
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    visit(self, item, &format!("{at}.{key}[{index}]"));
                }
            }
            Some(_) => self.problem(&format!("{at}.{key}"), "must be an array"),
        }
    }

    fn element(&mut self, element: &Value, at: &str) {
        let Some(kind) = element.get("type").and_then(Value::as_str) else {
            return self.problem(at, "element without a type");
        };
        if !ELEMENTS.contains(&kind) {
            return self.problem(at, format!("{kind} is not an element Teams shows"));
        }
        self.element_fields(kind, element, at);
        if let Some(action) = element.get("selectAction") {
            self.action(action, &format!("{at}.selectAction"));
        }
    }

    fn element_fields(&mut self, kind: &str, element: &Value, at: &str) {
        match kind {
            "TextBlock" => self.require_text(element, "text", at),
            "Image" => self.require_text(element, "url", at),
            "ImageSet" => self.each(element, "images", at, Self::element),
            "RichTextBlock" => self.require(element, "inlines", at),
            "Container" | "Column" => self.each(element, "items", at, Self::element),
            "ColumnSet" => self.each(element, "columns", at, Self::column),
            "FactSet" => self.each(element, "facts", at, Self::fact),
            "ActionSet" => self.each(element, "actions", at, Self::action),
            "Table" => self.each(element, "rows", at, Self::table_row),
            input => self.input(input, element, at),
        }
    }

    fn column(&mut self, column: &Value, at: &str) {
        match column.get("type").and_then(Value::as_str) {
            None | Some("Column") => self.each(column, "items", at, Self::element),
            Some(other) => self.problem(at, format!("{other} inside a ColumnSet")),
        }
    }

    fn fact(&mut self, fact: &Value, at: &str) {
        self.require_text(fact, "title", at);
        self.require_text(fact, "value", at);
    }

    fn table_row(&mut self, row: &Value, at: &str) {
        self.each(row, "cells", at, |check, cell, at| {
            check.each(cell, "items", at, Self::element)
        });
    }

    fn input(&mut self, kind: &str, input: &Value, at: &str) {
        self.require_text(input, "id", at);
        if let Some(id) = input.get("id").and_then(Value::as_str) {
            if self.input_ids.iter().any(|seen| seen == id) {
                self.problem(at, format!("input id {id} is used twice"));
            }
            self.input_ids.push(id.to_string());
        }
        if kind == "Input.ChoiceSet" {
            self.each(input, "choices", at, |check, choice, at| {
                check.require_text(choice, "title", at);
                check.require_text(choice, "value", at);
            });
        }
    }

    fn action(&mut self, action: &Value, at: &str) {
        let Some(kind) = action.get("type").and_then(Value::as_str) else {
            return self.problem(at, "action without a type");
        };
        match kind {
            "Action.Execute" => self.require_text(action, "verb", at),
            "Action.OpenUrl" => self.open_url(action, at),
            "Action.ShowCard" => match action.get("card") {
                Some(card) => self.card(card, &format!("{at}.card")),
                None => self.problem(at, "Action.ShowCard without a card"),
            },
            "Action.ToggleVisibility" => self.require(action, "targetElements", at),
            "Action.Submit" => {}
            other => self.problem(at, format!("{other} is not an action Teams runs")),
        }
    }

    fn open_url(&mut self, action: &Value, at: &str) {
        self.require_text(action, "url", at);
        if let Some(url) = action.get("url").and_then(Value::as_str) {
            if url::Url::parse(url).is_err() {
                self.problem(at, format!("url {url:?} is not absolute"));
            }
        }
    }

    fn require(&mut self, parent: &Value, key: &str, at: &str) {
        if parent.get(key).map_or(true, Value::is_null) {
            self.problem(at, format!("{key} is missing"));
        }
    }

    fn require_text(&mut self, parent: &Value, key: &str, at: &str) {
        match parent.get(key) {
            Some(Value::String(text)) if !text.is_empty() => {}
            Some(Value::String(_)) => self.problem(at, format!("{key} is empty")),
            _ => self.problem(at, format!("{key} is missing or not text")),
        }
    }

    /// `null` values and `${` left over from a template, anywhere.
    fn leftovers(&mut self, value: &Value, at: &str) {
        match value {
            Value::Null => self.problem(at, "null value"),
            Value::String(text) if text.contains("${") => {
                self.problem(at, "unexpanded ${ left in text")
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    self.leftovers(item, &format!("{at}[{index}]"));
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    if key.contains("${") {
                        self.problem(at, format!("unexpanded key {key}"));
                    }
                    self.leftovers(item, &format!("{at}.{key}"));
                }
            }
            _ => {}
        }
    }

    fn size(&mut self, card: &Value) {
        let bytes = card_message(card).to_string().encode_utf16().count() * 2;
        if bytes > MESSAGE_LIMIT_BYTES {
            self.problem(
                "message",
                format!("{bytes} bytes as UTF-16; the limit is {MESSAGE_LIMIT_BYTES}"),
            );
        }
    }
}

fn version_at_most_1_5(version: &str) -> bool {
    let mut parts = version.split('.');
    let major = parts.next().and_then(|part| part.parse::<u32>().ok());
    let minor = parts.next().and_then(|part| part.parse::<u32>().ok());
    match (major, minor, parts.next()) {
        (Some(1), Some(minor), None) => minor <= 5,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each template with the sample data beside it in `cards/`.
    fn samples() -> Vec<(&'static Template, Value)> {
        let read = |json: &str| serde_json::from_str::<Value>(json).expect("sample data is JSON");
        vec![
            (
                &*APPROVAL,
                read(include_str!("../../cards/approval.data.json")),
            ),
            (
                &*PROGRESS,
                read(include_str!("../../cards/progress.data.json")),
            ),
            (&*RESULT, read(include_str!("../../cards/result.data.json"))),
            (
                &*REQUEST_RECEIVED,
                read(include_str!("../../cards/request_received.data.json")),
            ),
            (
                &*REFUSAL,
                read(include_str!("../../cards/refusal.data.json")),
            ),
            (&*HELP, read(include_str!("../../cards/help.data.json"))),
        ]
    }

    #[test]
    fn every_template_reads_only_what_its_sample_data_has() {
        for (template, data) in samples() {
            let missing = template.missing_paths(&data).unwrap();
            assert!(missing.is_empty(), "{}: {missing:?}", template.name());
        }
    }

    #[test]
    fn every_template_expanded_over_its_sample_meets_teams_rules() {
        for (template, data) in samples() {
            let card = render(template, &data);
            if let Err(problems) = check_teams_rules(&card) {
                panic!("{}: {problems:#?}", template.name());
            }
        }
    }

    #[test]
    fn the_rules_name_what_teams_would_refuse() {
        let card = json!({
            "type": "AdaptiveCard",
            "version": "1.6",
            "refresh": { "action": { "type": "Action.Submit" } },
            "body": [
                { "type": "TextBlock" },
                { "type": "Media", "sources": [] },
                { "type": "Input.Text", "id": "reason" },
                { "type": "Input.Text", "id": "reason" },
                { "type": "FactSet", "facts": [{ "title": "a", "value": null }] },
            ],
            "actions": [
                { "type": "Action.Execute" },
                { "type": "Action.OpenUrl", "url": "/relative" },
                { "type": "Action.Http" },
            ],
        });
        let problems = check_teams_rules(&card).unwrap_err().join("\n");
        for expected in [
            "1.6 is above 1.5",
            "refresh: action must be an Action.Execute",
            "body[0]: text is missing",
            "Media is not an element Teams shows",
            "input id reason is used twice",
            "facts[0]: value is missing",
            "actions[0]: verb is missing",
            "is not absolute",
            "Action.Http is not an action Teams runs",
            "null value",
        ] {
            assert!(
                problems.contains(expected),
                "{expected:?} not in\n{problems}"
            );
        }
    }

    #[test]
    fn a_card_over_the_message_limit_is_refused() {
        let text = "x".repeat(MESSAGE_LIMIT_BYTES);
        let card = json!({
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{ "type": "TextBlock", "text": text }],
        });
        let problems = check_teams_rules(&card).unwrap_err();
        assert!(problems[0].starts_with("message:"), "{problems:?}");
    }

    #[test]
    fn long_typed_text_is_clipped_so_cards_stay_under_the_limit() {
        let huge = "a".repeat(MAX_TEXT_CHARS * 20);
        let card = refusal(&huge, &huge, Some(&huge));
        check_teams_rules(&card).unwrap();
        assert!(card.to_string().contains('…'));
    }
}
