//! Property tests and a committed corpus for the frame decoder: arbitrary input never panics,
//! and every bad input is answered with a reason.

use std::path::Path;

use proptest::prelude::*;
use switchboard::websocket::frame::{parse_request, parse_text_request};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        match parse_request(&bytes) {
            Ok(r) => prop_assert!(!r.event.is_empty()),
            Err(bad) => prop_assert!(!bad.message.is_empty()),
        }
    }

    #[test]
    fn well_formed_requests_round_trip(
        event in "[a-zA-Z0-9/_:.-]{1,128}",
        seq in proptest::option::of(any::<i64>()),
        n in any::<i32>(),
    ) {
        let mut frame = serde_json::json!({"event": event, "data": {"n": n}});
        if let Some(s) = seq {
            frame["seqno"] = serde_json::json!(s);
        }
        let r = parse_request(frame.to_string().as_bytes()).unwrap();
        prop_assert_eq!(r.event, event);
        prop_assert_eq!(r.data.to_value().unwrap()["n"].as_i64(), Some(n as i64));
        prop_assert_eq!(r.seqno.and_then(|v| v.as_i64()), seq);
    }

    #[test]
    fn json_shaped_noise_never_panics(s in r#"\{("[a-z]{0,6}":(null|true|[0-9]{0,30}|"[^"\\]{0,10}"|\[\]|\{\}),?){0,6}\}"#) {
        // Text and binary frames are parsed by two entry points; they must agree.
        prop_assert_eq!(parse_request(s.as_bytes()), parse_text_request(&s));
    }
}

#[test]
fn corpus_inputs_parse_or_fail_as_their_names_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/frame_corpus");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let bytes = std::fs::read(&path).unwrap();
        let parsed = parse_request(&bytes);
        if name.starts_with("ok-") {
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        } else {
            assert!(parsed.is_err(), "{name} should be refused");
        }
        n += 1;
    }
    assert!(n >= 10, "the corpus is present");
}
