//! Properties of the W3C codec: format→parse round-trips, parsing never panics on arbitrary
//! bytes, and the parser agrees with a reference reading of the spec's grammar on headers
//! that are one mutation away from valid, where bugs hide.

use proptest::prelude::*;
use trace_harness::trace::tracestate::{
    MAX_KEY_CHARS, MAX_MEMBERS, MAX_PROPAGATED_CHARS, MAX_VALUE_CHARS,
};
use trace_harness::trace::{SpanId, TraceContext, TraceFlags, TraceId, TraceState};

/// Enough cases to find grammar slips, few enough that `cargo test` stays fast.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The spec's `traceparent` rules, written as plainly as possible, independent of the codec.
fn reference_accepts(header: &str) -> bool {
    let lc_hex =
        |s: &str| !s.is_empty() && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let not_zero = |s: &str| s.bytes().any(|c| c != b'0');
    let b = header.as_bytes();
    // Only the first 55 characters are read; "Vendors MUST NOT parse or assume anything about
    // unknown fields" of a future version.
    if b.len() < 55 || b.len() > 512 || !b[..55].is_ascii() {
        return false;
    }
    let version = &header[0..2];
    let length_ok = if version == "00" {
        b.len() == 55
    } else {
        b.len() == 55 || b[55] == b'-'
    };
    lc_hex(version)
        && version != "ff"
        && length_ok
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && lc_hex(&header[3..35])
        && not_zero(&header[3..35])
        && lc_hex(&header[36..52])
        && not_zero(&header[36..52])
        && lc_hex(&header[53..55])
}

/// A header one edit away from valid: a character replaced, inserted or removed, or the
/// header cut or extended.
fn near_valid_traceparent() -> impl Strategy<Value = String> {
    let base = prop_oneof![
        Just(VALID.to_owned()),
        Just(VALID.replacen("00-", "cc-", 1)),
        Just(format!("{}-future", VALID.replacen("00-", "cc-", 1))),
    ];
    let alphabet = prop_oneof![
        Just('0'),
        Just('a'),
        Just('f'),
        Just('g'),
        Just('A'),
        Just('-'),
        Just('.'),
        Just(' '),
        Just('é'),
    ];
    (base, 0usize..70, alphabet, 0u8..5).prop_map(|(mut header, at, c, edit)| {
        let at = at.min(header.len());
        let at = (0..=at)
            .rev()
            .find(|i| header.is_char_boundary(*i))
            .unwrap_or(0);
        match edit {
            0 if at < header.len() => {
                let end = at + header[at..].chars().next().map_or(0, char::len_utf8);
                header.replace_range(at..end, &c.to_string());
            }
            1 => header.insert(at, c),
            2 if at < header.len() => {
                header.remove(at);
            }
            3 => header.truncate(at),
            _ => header.push(c),
        }
        header
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn traceparent_format_then_parse_round_trips(
        trace in any::<[u8; 16]>(),
        span in any::<[u8; 8]>(),
        flags in any::<u8>(),
    ) {
        let (Some(trace_id), Some(span_id)) = (TraceId::from_bytes(trace), SpanId::from_bytes(span)) else {
            return Ok(());
        };
        let context = TraceContext { trace_id, span_id, flags: TraceFlags::from_byte(flags), tracestate: None };
        let header = context.traceparent();
        let parsed = TraceContext::parse_traceparent(header.as_str()).unwrap();
        prop_assert_eq!(parsed.trace_id, trace_id);
        prop_assert_eq!(parsed.span_id, span_id);
        // "Vendors MUST set those [other flags] to zero."
        prop_assert_eq!(parsed.flags, TraceFlags::from_byte(flags).propagated());
        let again = parsed.traceparent();
        prop_assert_eq!(again.as_str(), header.as_str());
    }

    #[test]
    fn traceparent_parsing_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = TraceContext::parse_traceparent(&text);
        let _ = TraceContext::from_header_fields(&text, [text.as_ref()]);
    }

    #[test]
    fn traceparent_accepts_exactly_what_the_spec_accepts(header in near_valid_traceparent()) {
        let parsed = TraceContext::parse_traceparent(&header);
        prop_assert_eq!(parsed.is_ok(), reference_accepts(&header), "header {:?}: {:?}", header, parsed);
    }

    #[test]
    fn tracestate_parsing_never_panics_and_what_it_keeps_is_canonical(
        fields in proptest::collection::vec("[ -~\t]{0,80}", 0..6),
    ) {
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        if let Ok(state) = TraceState::combine(fields.iter().copied()) {
            prop_assert!(state.len() <= MAX_MEMBERS);
            prop_assert!(state.header().len() <= MAX_PROPAGATED_CHARS);
            let again = TraceState::parse(state.header()).unwrap();
            prop_assert_eq!(again.header(), state.header());
        }
    }

    #[test]
    fn tracestate_parsing_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = TraceState::parse(&text);
    }

    #[test]
    fn a_valid_tracestate_round_trips_through_any_whitespace_and_empty_members(
        members in valid_members(),
        seps in proptest::collection::vec(separator(), 33),
    ) {
        let canonical = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        prop_assume!(canonical.len() <= MAX_PROPAGATED_CHARS);
        let mut spaced = String::new();
        for (i, (k, v)) in members.iter().enumerate() {
            spaced.push_str(&seps[i]);
            spaced.push_str(&format!("{k}={v}"));
        }
        spaced.push_str(&seps[32]);
        let state = TraceState::parse(&spaced).unwrap();
        prop_assert_eq!(state.header(), canonical.as_str());
        prop_assert_eq!(state.len(), members.len());
        for (k, v) in &members {
            prop_assert_eq!(state.get(k), Some(v.as_str()));
        }
    }

    #[test]
    fn an_invalid_member_discards_the_whole_tracestate(
        members in valid_members(),
        bad in invalid_member(),
        at in 0usize..32,
    ) {
        let mut all: Vec<String> = members.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let at = at.min(all.len());
        all.insert(at, bad.clone());
        prop_assert!(TraceState::parse(&all.join(",")).is_err(), "{:?} accepted", bad);
    }

    #[test]
    fn a_repeated_key_keeps_its_first_entry_and_the_rest_of_the_list(
        members in valid_members(),
        value in value(),
    ) {
        let (key, _) = &members[0];
        let list = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let repeated = TraceState::parse(&format!("{list},{key}={value}"));
        prop_assert!(repeated.is_ok(), "{repeated:?}");
        prop_assert_eq!(repeated.ok(), TraceState::parse(&list).ok());
    }

    #[test]
    fn with_entry_puts_the_entry_first_and_keeps_the_others_in_order(
        members in valid_members(),
        key in key(),
        value in value(),
    ) {
        let header = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let state = TraceState::parse(&header).unwrap();
        let updated = state.with_entry(&key, &value).unwrap();
        let entries: Vec<(&str, &str)> = updated.entries().collect();
        // An entry of at most 128 characters is never the one truncation removes.
        if key.len() + 1 + value.len() <= 128 {
            prop_assert_eq!(entries[0], (key.as_str(), value.as_str()));
        }
        let others: Vec<(&str, &str)> = state.entries().filter(|(k, _)| *k != key).collect();
        let kept: Vec<(&str, &str)> = entries.iter().copied().filter(|(k, _)| *k != key).collect();
        // The others keep their order; truncation may only drop some of them.
        let mut rest = others.iter();
        for entry in &kept {
            prop_assert!(rest.any(|o| o == entry), "{:?} out of order", entry);
        }
        prop_assert!(updated.len() <= MAX_MEMBERS);
        prop_assert!(updated.header().len() <= MAX_PROPAGATED_CHARS);
    }
}

fn re(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .boxed()
}

fn keychars(max: usize) -> String {
    format!("[a-z0-9_*/@-]{{0,{max}}}")
}

/// `( lcalpha / DIGIT ) 0*255 ( keychar )`: short keys, keys at the length bound, and keys in
/// the multi-tenant `tenant@system` shape.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => re(&format!("[a-z0-9]{}", keychars(12))),
        1 => re(&format!("[a-z0-9]{}", keychars(MAX_KEY_CHARS - 1))),
        2 => re("[a-z0-9][a-z0-9_*/-]{0,8}@[a-z][a-z0-9_*/-]{0,13}"),
    ]
}

/// `0*255(chr) nblk-chr`.
fn value() -> impl Strategy<Value = String> {
    let chr = "[ !-+\\--<>-~]";
    let nblk = "[!-+\\--<>-~]";
    prop_oneof![
        3 => re(&format!("{chr}{{0,20}}{nblk}")),
        1 => re(&format!("{chr}{{0,{}}}{nblk}", MAX_VALUE_CHARS - 1)),
    ]
    .prop_map(|s| s)
}

/// 1 to 32 members with distinct keys.
fn valid_members() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec((key(), value()), 1..=MAX_MEMBERS).prop_map(|members| {
        let mut seen = std::collections::HashSet::new();
        members
            .into_iter()
            .filter(|(k, _)| seen.insert(k.clone()))
            .collect()
    })
}

/// At least one comma, with optional whitespace and empty members around it.
fn separator() -> impl Strategy<Value = String> {
    "[ \t]{0,2}(,[ \t]{0,2}){1,3}".prop_map(|s| s)
}

/// A list member the grammar rejects, one rule broken at a time.
fn invalid_member() -> impl Strategy<Value = String> {
    prop_oneof![
        // Uppercase, dot or space in a key; a first character other than a letter or digit.
        "[A-Z][a-z]{0,5}=1",
        "[a-z]{1,5}[A-Z. ][a-z]{0,5}=1",
        "[_*/@-][a-z]{0,5}=1",
        // Over-long keys, at signs or not.
        Just(format!("{}=1", "k".repeat(MAX_KEY_CHARS + 1))),
        Just(format!(
            "{}@{}=1",
            "t".repeat(200),
            "v".repeat(MAX_KEY_CHARS - 200)
        )),
        // Values: empty, `=`, characters outside printable ASCII, too long.
        "[a-z]{1,5}=",
        "[a-z]{1,5}=[a-z]{0,3}=[a-z]{0,3}",
        "[a-z]{1,5}=[a-z]{0,3}[\u{0}-\u{8}\u{b}-\u{1f}\u{7f}é][a-z]{1,3}",
        Just(format!("v={}", "x".repeat(MAX_VALUE_CHARS + 1))),
        // No `=` at all.
        "[a-z]{1,8}",
    ]
    .prop_map(|s| s)
}
