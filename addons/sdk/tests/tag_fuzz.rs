//! Property test for the tag parser: exactly the well-formed names are accepted.

use proptest::prelude::*;
use switchboard_sdk::Tag;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn tags_are_accepted_exactly_when_well_formed(s in "\\PC{0,80}") {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
        prop_assert_eq!(Tag::parse(&s).is_ok(), ok);
    }
}
