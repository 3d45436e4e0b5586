//! The addon's request and reply types, and the limits a new poll is checked against.
//!
//! Every type here derives `poem_openapi::Object` beside serde's trait, so the event document
//! (`/api/asyncapi.json`) and the OpenAPI spec describe exactly what the handlers bind and
//! answer. Names are prefixed with `Poll`: every addon's schemas share one namespace.

use serde::{Deserialize, Serialize};
use switchboard_sdk::EventError;

/// Longest question, in characters (not bytes: a question in Greek is as long as one in English).
pub const MAX_QUESTION_CHARS: usize = 200;
/// Fewest options a poll may offer.
pub const MIN_OPTIONS: usize = 2;
/// Most options a poll may offer.
pub const MAX_OPTIONS: usize = 10;
/// Longest option text, in characters.
pub const MAX_OPTION_CHARS: usize = 100;

/// `data` of `admin/addons/poll/create`.
#[derive(Debug, Clone, Deserialize, poem_openapi::Object)]
#[oai(rename = "PollCreateRequest")]
pub struct CreatePoll {
    /// The question, 1-200 characters (leading and trailing spaces are dropped).
    pub question: String,
    /// The answers to choose from: 2-10 distinct texts of 1-100 characters each. Votes name
    /// an answer by its position in this list, starting at 0.
    pub options: Vec<String>,
}

/// A poll that passed [`CreatePoll::validate`]: trimmed texts within the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPoll {
    /// The trimmed question.
    pub question: String,
    /// The trimmed options, in the order given.
    pub options: Vec<String>,
}

impl CreatePoll {
    /// Checks the limits; the error names the field and the limit, as a 400 reply.
    pub fn validate(self) -> Result<NewPoll, EventError> {
        let question = self.question.trim().to_string();
        let q_len = question.chars().count();
        if q_len == 0 {
            return Err(EventError::bad_request("data.question: must not be empty"));
        }
        if q_len > MAX_QUESTION_CHARS {
            return Err(EventError::bad_request(format!(
                "data.question: at most {MAX_QUESTION_CHARS} characters, got {q_len}"
            )));
        }
        let n = self.options.len();
        if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&n) {
            return Err(EventError::bad_request(format!(
                "data.options: {MIN_OPTIONS} to {MAX_OPTIONS} options, got {n}"
            )));
        }
        let mut options: Vec<String> = Vec::with_capacity(n);
        for (i, text) in self.options.iter().enumerate() {
            let text = text.trim();
            let len = text.chars().count();
            if len == 0 {
                return Err(EventError::bad_request(format!(
                    "data.options[{i}]: must not be empty"
                )));
            }
            if len > MAX_OPTION_CHARS {
                return Err(EventError::bad_request(format!(
                    "data.options[{i}]: at most {MAX_OPTION_CHARS} characters, got {len}"
                )));
            }
            if let Some(first) = options.iter().position(|o| o == text) {
                return Err(EventError::bad_request(format!(
                    "data.options[{i}]: the same text as options[{first}]"
                )));
            }
            options.push(text.to_string());
        }
        Ok(NewPoll { question, options })
    }
}

/// `data` of `admin/addons/poll/vote`.
#[derive(Debug, Clone, Copy, Deserialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "PollVoteRequest", rename_all = "camelCase")]
pub struct CastVote {
    /// The poll, as answered by `create`.
    pub poll_id: i64,
    /// The chosen answer: its position in the poll's `options`, starting at 0.
    pub option: u32,
}

/// `data` of `admin/addons/poll/results`.
#[derive(Debug, Clone, Copy, Deserialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "PollResultsRequest", rename_all = "camelCase")]
pub struct ResultsQuery {
    /// The poll, as answered by `create`.
    pub poll_id: i64,
}

/// One answer of a poll and how many chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, poem_openapi::Object)]
#[oai(rename = "PollOptionResult")]
pub struct OptionResult {
    /// Position in the poll's options, starting at 0 (what a vote names).
    pub index: u32,
    /// The answer's text.
    pub text: String,
    /// Votes for it.
    pub votes: u64,
}

/// A poll and its counts: the reply of `create`, `vote` and `results`, the push to the poll's
/// tag after every vote, and the body of `GET /api/addons/poll/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, poem_openapi::Object)]
#[serde(rename_all = "camelCase")]
#[oai(rename = "PollResults", rename_all = "camelCase")]
pub struct PollResults {
    /// The poll's id.
    pub id: i64,
    /// The question.
    pub question: String,
    /// Every answer, in order, with its votes.
    pub options: Vec<OptionResult>,
    /// Votes cast in all.
    pub total: u64,
    /// The tag whose members get these results pushed after every vote (`poll:<id>`; join it
    /// with the built-in `join` event).
    pub tag: String,
    /// Username of whoever created the poll.
    pub created_by: String,
    /// Unix seconds of creation.
    pub created_at: i64,
}

/// The tag of a poll's watchers.
pub fn tag_name(poll_id: i64) -> String {
    format!("poll:{poll_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(question: &str, options: &[&str]) -> CreatePoll {
        CreatePoll {
            question: question.to_string(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_valid_poll_is_trimmed_and_kept_in_order() {
        let p = create("  Lunch?  ", &[" pizza", "soup ", "salad"])
            .validate()
            .unwrap();
        assert_eq!(p.question, "Lunch?");
        assert_eq!(p.options, ["pizza", "soup", "salad"]);
    }

    #[test]
    fn question_must_be_one_to_two_hundred_characters() {
        let e = create("   ", &["a", "b"]).validate().unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "data.question: must not be empty")
        );
        // 200 two-byte characters are 400 bytes and still within the limit.
        assert!(create(&"é".repeat(200), &["a", "b"]).validate().is_ok());
        let e = create(&"é".repeat(201), &["a", "b"])
            .validate()
            .unwrap_err();
        assert_eq!(e.message, "data.question: at most 200 characters, got 201");
    }

    #[test]
    fn option_count_is_bounded_both_ways() {
        let e = create("q", &["only"]).validate().unwrap_err();
        assert_eq!(e.message, "data.options: 2 to 10 options, got 1");
        let eleven: Vec<String> = (0..11).map(|i| i.to_string()).collect();
        let refs: Vec<&str> = eleven.iter().map(String::as_str).collect();
        let e = create("q", &refs).validate().unwrap_err();
        assert_eq!(e.message, "data.options: 2 to 10 options, got 11");
        assert!(create("q", &refs[..10]).validate().is_ok());
    }

    #[test]
    fn each_option_is_non_empty_short_and_distinct() {
        let e = create("q", &["a", " "]).validate().unwrap_err();
        assert_eq!(e.message, "data.options[1]: must not be empty");
        let long = "x".repeat(101);
        let e = create("q", &["a", &long]).validate().unwrap_err();
        assert_eq!(
            e.message,
            "data.options[1]: at most 100 characters, got 101"
        );
        let e = create("q", &["yes", "no", " yes"]).validate().unwrap_err();
        assert_eq!(e.message, "data.options[2]: the same text as options[0]");
    }

    #[test]
    fn results_serialise_with_the_documented_names() {
        let r = PollResults {
            id: 3,
            question: "q".into(),
            options: vec![OptionResult {
                index: 0,
                text: "a".into(),
                votes: 2,
            }],
            total: 2,
            tag: tag_name(3),
            created_by: "alice".into(),
            created_at: 10,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["createdBy"], "alice");
        assert_eq!(v["createdAt"], 10);
        assert_eq!(v["tag"], "poll:3");
        assert_eq!(v["options"][0]["votes"], 2);
    }

    #[test]
    fn requests_bind_from_camel_case() {
        let v: CastVote = serde_json::from_str(r#"{"pollId": 4, "option": 1}"#).unwrap();
        assert_eq!((v.poll_id, v.option), (4, 1));
        assert!(serde_json::from_str::<CastVote>(r#"{"pollId": 4, "option": -1}"#).is_err());
    }
}
