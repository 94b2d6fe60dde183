//! The stored form of a notice (SPEC §10), shared by the backends: the
//! record besides its name and version, as one JSON object. `sqlite` keeps
//! it in `notices.record`, `dynamodb` in the `record` attribute of the
//! notice's item; PostgreSQL can keep it in a `jsonb` column next to the
//! `version` its `INSERT ... ON CONFLICT ... WHERE version = $n` compares.
//!
//! The object is `{"holders": [AGENT, ...], "delivered": [MESSAGE, ...],
//! "claim": null | {"agent": AGENT, "action": "trigger" | "resolve",
//! "message": MESSAGE, "until": EPOCH}, "sent": {"at": EPOCH, "severity":
//! NUMBER}}` (`message` only for a trigger; `sent`, the last trigger
//! delivered, only when there is one).
//! Its own types, not `Notice`'s serde form, so the layout every agent of
//! a fleet (and every version of cimaa) shares changes only on purpose.
//! Fields it does not know (written by a newer agent) are ignored; a
//! missing field, or one of the wrong type, makes the record malformed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Claim, Error, Notice, Pending, short_key};
use crate::notice::LastSent;
use crate::severity::Severity;

#[derive(Debug, Serialize, Deserialize)]
struct NoticeBody {
    /// Agents holding the fault CRITICAL.
    holders: BTreeSet<String>,
    /// Messages delivered for the open incident, oldest first.
    delivered: Vec<String>,
    /// The delivery in flight; `null` when none.
    claim: Option<ClaimBody>,
    /// The last trigger delivered; absent when none is recorded (records
    /// written before it existed read as none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sent: Option<SentBody>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SentBody {
    /// Epoch seconds on the deliverer's clock.
    at: i64,
    /// The severity its check reported, as a number (`50`: CRITICAL).
    severity: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimBody {
    agent: String,
    /// `"trigger"` or `"resolve"`.
    action: String,
    /// The trigger's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    until: i64,
}

/// The JSON object of `notice`'s record.
///
/// # Errors
/// `Error::Task` if serializing fails (it cannot: strings, sets and numbers).
pub(crate) fn write(notice: &Notice) -> Result<String, Error> {
    let body = NoticeBody {
        holders: notice.holders.clone(),
        delivered: notice.delivered.clone(),
        claim: notice.claim.as_ref().map(|claim| {
            let (action, message) = match &claim.action {
                Pending::Trigger { message } => ("trigger", Some(message.clone())),
                Pending::Resolve => ("resolve", None),
            };
            ClaimBody {
                agent: claim.agent.clone(),
                action: action.to_owned(),
                message,
                until: claim.until,
            }
        }),
        sent: notice.sent.map(|sent| SentBody {
            at: sent.at,
            severity: sent.reported.0,
        }),
    };
    serde_json::to_string(&body).map_err(|error| Error::Task(error.to_string()))
}

/// The notice `name` stored at `version` with the record `json`, or what is
/// wrong with the record (pure).
pub(crate) fn read(name: &str, version: u64, json: &str) -> Result<Notice, String> {
    let body: NoticeBody = serde_json::from_str(json).map_err(|error| error.to_string())?;
    let claim = match body.claim {
        None => None,
        Some(claim) => {
            let action = match (claim.action.as_str(), claim.message) {
                ("trigger", Some(message)) => Pending::Trigger { message },
                ("trigger", None) => {
                    return Err("its claim is a trigger without a message".to_owned());
                }
                ("resolve", _) => Pending::Resolve,
                (other, _) => {
                    return Err(format!(
                        "its claim's action `{}` is unknown",
                        short_key(other)
                    ));
                }
            };
            Some(Claim {
                agent: claim.agent,
                action,
                until: claim.until,
            })
        }
    };
    Ok(Notice {
        name: name.to_owned(),
        holders: body.holders,
        delivered: body.delivered,
        claim,
        sent: body.sent.map(|sent| LastSent {
            at: sent.at,
            reported: Severity(sent.severity),
        }),
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimed(action: Pending) -> Notice {
        Notice {
            name: "//meta".into(),
            holders: ["web2".to_owned(), "web1".to_owned()].into(),
            delivered: vec!["down".into(), String::new()],
            claim: Some(Claim {
                agent: "web1".into(),
                action,
                until: 160,
            }),
            sent: None,
            version: 7,
        }
    }

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        for action in [
            Pending::Trigger {
                message: "web3 is \"down\"".into(),
            },
            Pending::Resolve,
        ] {
            let notice = claimed(action);
            let json = write(&notice).unwrap();
            assert_eq!(read("//meta", 7, &json), Ok(notice));
        }
        let empty = Notice::new("//meta");
        assert_eq!(read("//meta", 0, &write(&empty).unwrap()), Ok(empty));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let json = write(&claimed(Pending::Trigger {
            message: "down".into(),
        }))
        .unwrap();
        assert_eq!(
            json,
            r#"{"holders":["web1","web2"],"delivered":["down",""],"claim":{"agent":"web1","action":"trigger","message":"down","until":160}}"#
        );
    }

    #[test]
    fn fields_of_a_newer_agent_are_ignored() {
        let json = r#"{"holders":[],"delivered":["down"],"claim":null,"epoch":3}"#;
        assert_eq!(
            read("//meta", 2, json).map(|notice| notice.delivered),
            Ok(vec!["down".to_owned()])
        );
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let cases = [
            (r#"{"holders":[]}"#, "missing field `delivered`"),
            (
                r#"{"holders":"web1","delivered":[],"claim":null}"#,
                "invalid type",
            ),
            (
                r#"{"holders":[],"delivered":[],"claim":{"agent":"a","action":"trigger","until":1}}"#,
                "its claim is a trigger without a message",
            ),
            (
                r#"{"holders":[],"delivered":[],"claim":{"agent":"a","action":"page","until":1}}"#,
                "its claim's action `page` is unknown",
            ),
            (
                r#"{"holders":[],"delivered":[],"claim":{"agent":"a","action":"resolve","until":"soon"}}"#,
                "invalid type",
            ),
            ("not json", "expected"),
        ];
        for (json, want) in cases {
            let error = read("//meta", 1, json).unwrap_err();
            assert!(error.contains(want), "{json}: {error}");
        }
    }
}
