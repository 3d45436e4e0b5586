//! Inputs no field should accept, shared by the suites that feed them to every field they
//! attack.

use serde_json::{Value, json};

/// SQL and document-store injection strings, including a NUL and full-width look-alikes.
pub const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "' OR 1=1 --",
    "admin'--",
    "admin' #",
    "\" OR \"\"=\"",
    "1; DROP TABLE users; --",
    "1' UNION SELECT password_hash, 1, 1 FROM users --",
    "%' OR username LIKE '%",
    "') OR ('a'='a",
    "1)) OR 1=1 /*",
    "\\'; SELECT sqlite_version(); --",
    "'||(SELECT group_concat(key_hash) FROM api_keys)||'",
    "$where: '1 == 1'",
    "{\"$gt\": \"\"}",
    "\u{0}' OR '1'='1",
    "１' ＯＲ '１'='１",
];

/// `depth` nested empty arrays.
pub fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Numbers and shapes that fit no field of any built-in event.
pub fn hostile_values() -> Vec<Value> {
    let deep: Value = serde_json::from_str(&nested(120)).unwrap();
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1.7976931348623157e308),
        serde_json::from_str("123456789012345678901234567890").unwrap(),
        json!([]),
        json!(["a"]),
        json!({}),
        json!({"id": "x"}),
        deep,
    ]
}
