//! The commands people type to the bot, parsed into values.
//!
//! A leading `/` is optional, the bot's @mention has already been removed,
//! and the verb is case-insensitive. Parsing never looks anything up; a
//! mistyped command is answered with what to type instead.

use std::fmt;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Contain {
        upn: String,
        incident: String,
        justification: String,
    },
    /// A containment that ends sessions and leaves sign-in as it is.
    Revoke {
        upn: String,
        incident: String,
        justification: String,
    },
    Release {
        upn: String,
        incident: String,
        reason: String,
    },
    Status {
        query: String,
    },
    Policy {
        upn: String,
    },
    Help,
}

/// Why a text is not a command, with the usage to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub message: String,
    pub usage: &'static str,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; type `{}`", self.message, self.usage)
    }
}

pub const CONTAIN_USAGE: &str = "contain <upn> <incident> <justification>";
pub const REVOKE_USAGE: &str = "revoke <upn> <incident> <justification>";
pub const RELEASE_USAGE: &str = "release <upn> <incident> <reason>";
pub const STATUS_USAGE: &str = "status <request-id | upn | incident>";
pub const POLICY_USAGE: &str = "policy <upn>";
const VERBS: [&str; 6] = ["contain", "revoke", "release", "status", "policy", "help"];

impl Command {
    pub fn parse(text: &str) -> Result<Command, CommandError> {
        let text = text.trim().trim_start_matches('/');
        let mut words = text.split_whitespace();
        let verb = words.next().unwrap_or("").to_lowercase();
        let rest: Vec<&str> = words.collect();
        match verb.as_str() {
            "contain" => {
                let (upn, incident, why) = three_part(&rest, CONTAIN_USAGE, "justification")?;
                Ok(Command::Contain {
                    upn,
                    incident,
                    justification: why,
                })
            }
            "revoke" => {
                let (upn, incident, why) = three_part(&rest, REVOKE_USAGE, "justification")?;
                Ok(Command::Revoke {
                    upn,
                    incident,
                    justification: why,
                })
            }
            "release" => {
                let (upn, incident, why) = three_part(&rest, RELEASE_USAGE, "reason")?;
                Ok(Command::Release {
                    upn,
                    incident,
                    reason: why,
                })
            }
            "status" => match rest.as_slice() {
                [query] => Ok(Command::Status {
                    query: query.to_string(),
                }),
                _ => Err(usage(
                    "status needs exactly one request id, UPN or incident",
                    STATUS_USAGE,
                )),
            },
            "policy" => match rest.as_slice() {
                [upn] => Ok(Command::Policy {
                    upn: upn.to_string(),
                }),
                _ => Err(usage("policy needs exactly one UPN", POLICY_USAGE)),
            },
            "help" | "" => Ok(Command::Help),
            other => Err(unknown_verb(other)),
        }
    }
}

fn three_part(
    rest: &[&str],
    usage_text: &'static str,
    last: &str,
) -> Result<(String, String, String), CommandError> {
    match rest {
        [] => Err(usage("the user's UPN is missing", usage_text)),
        [_] => Err(usage("the incident number is missing", usage_text)),
        [_, _] => Err(usage(&format!("the {last} is missing"), usage_text)),
        [upn, incident, why @ ..] => Ok((upn.to_string(), incident.to_string(), why.join(" "))),
    }
}

fn usage(message: &str, usage: &'static str) -> CommandError {
    CommandError {
        message: message.to_string(),
        usage,
    }
}

fn unknown_verb(verb: &str) -> CommandError {
    let closest = VERBS
        .iter()
        .min_by_key(|known| edit_distance(verb, known))
        .copied()
        .unwrap_or("help");
    let usage_text = match closest {
        "contain" => CONTAIN_USAGE,
        "revoke" => REVOKE_USAGE,
        "release" => RELEASE_USAGE,
        "status" => STATUS_USAGE,
        "policy" => POLICY_USAGE,
        _ => "help",
    };
    let message = if edit_distance(verb, closest) <= 2 {
        format!("unknown command `{verb}`; did you mean `{closest}`?")
    } else {
        format!("unknown command `{verb}`; the commands are contain, revoke, status, release, policy and help")
    };
    CommandError {
        message,
        usage: usage_text,
    }
}

/// Levenshtein distance, for suggesting the command that was meant.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contain_takes_the_rest_of_the_line_as_justification() {
        let command =
            Command::parse("/Contain alice@contoso.com INC0010001 token theft seen").unwrap();
        assert_eq!(
            command,
            Command::Contain {
                upn: "alice@contoso.com".into(),
                incident: "INC0010001".into(),
                justification: "token theft seen".into(),
            }
        );
    }

    #[test]
    fn a_missing_part_is_named() {
        let error = Command::parse("contain alice@contoso.com INC0010001").unwrap_err();
        assert!(error.message.contains("justification"));
        assert_eq!(error.usage, CONTAIN_USAGE);
        let error = Command::parse("contain").unwrap_err();
        assert!(error.message.contains("UPN"));
    }

    #[test]
    fn revoke_is_a_containment_command_of_its_own() {
        let command = Command::parse("/Revoke dave@contoso.com INC2 still signed in").unwrap();
        assert_eq!(
            command,
            Command::Revoke {
                upn: "dave@contoso.com".into(),
                incident: "INC2".into(),
                justification: "still signed in".into(),
            }
        );
        let error = Command::parse("revoke dave@contoso.com").unwrap_err();
        assert_eq!(error.usage, REVOKE_USAGE);
    }

    #[test]
    fn a_mistyped_verb_gets_a_suggestion() {
        let error = Command::parse("contian alice@contoso.com INC1 x").unwrap_err();
        assert!(
            error.message.contains("did you mean `contain`"),
            "{}",
            error.message
        );
        let error = Command::parse("launch missiles").unwrap_err();
        assert!(error.message.contains("the commands are"));
    }

    #[test]
    fn status_policy_and_help_parse() {
        assert_eq!(
            Command::parse("STATUS CR-ABCDEFGH").unwrap(),
            Command::Status {
                query: "CR-ABCDEFGH".into()
            }
        );
        assert_eq!(
            Command::parse("policy a@b.c").unwrap(),
            Command::Policy {
                upn: "a@b.c".into()
            }
        );
        assert_eq!(Command::parse("  help ").unwrap(), Command::Help);
    }
}
