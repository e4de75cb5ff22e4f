//! W3C Trace Context Level 2, requirement by requirement, each quoted. Requirements about
//! propagation go through the front door: a raw HTTP request to the service's `POST /test`
//! (the contract the W3C conformance suite drives), and what a wiremock target received from
//! the service. Requirements about the list itself go through the `TraceState` codec.
//!
//! Spec: <https://www.w3.org/TR/trace-context-2/> (quotes from its request-header section,
//! processing model and trace-id considerations).

mod common;

use common::sut::{exchange, post_test, Callback};
use trace_harness::trace::tracestate::{MAX_MEMBERS, MAX_PROPAGATED_CHARS};
use trace_harness::trace::{TraceContext, TraceState};

const TRACE_ID: &str = "12345678901234567890123456789012";
const PARENT_ID: &str = "1234567890123456";
const TRACEPARENT: &str = "00-12345678901234567890123456789012-1234567890123456-01";
/// Sampled off, as the W3C suite sends it alongside `tracestate`.
const TRACEPARENT_00: &str = "00-12345678901234567890123456789012-1234567890123456-00";

/// One `/test` call with these header fields; the callback it caused.
fn propagated(headers: &[(&str, &str)]) -> Callback {
    let exchange = post_test(headers, 1);
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    exchange.only().clone()
}

/// Asserts the service continued the sender's trace as a child.
fn assert_continues(headers: &[(&str, &str)]) -> Callback {
    let callback = propagated(headers);
    let context = callback.traceparent();
    assert_eq!(context.trace_id.to_string(), TRACE_ID, "{headers:?}");
    assert_ne!(context.span_id.to_string(), PARENT_ID, "{headers:?}");
    callback
}

/// Asserts the service restarted the trace: a new, valid trace id and no inherited
/// `tracestate`. Processing model: "If either `trace-id`, `parent-id` or `trace-flags` are
/// invalid, the vendor creates a new `traceparent` header and deletes `tracestate`."
fn assert_restarts(headers: &[(&str, &str)]) {
    let callback = propagated(headers);
    let context = callback.traceparent();
    assert_ne!(context.trace_id.to_string(), TRACE_ID, "{headers:?}");
    assert_eq!(callback.tracestate(), None, "{headers:?}");
}

/// The `tracestate` the service sent on after receiving a valid `traceparent` and these
/// `tracestate` fields.
fn tracestate_after(fields: &[&str]) -> Option<String> {
    let mut headers = vec![("traceparent", TRACEPARENT_00)];
    headers.extend(fields.iter().map(|f| ("tracestate", *f)));
    assert_continues(&headers).tracestate()
}

fn discarded(fields: &[&str]) {
    assert_eq!(
        tracestate_after(fields),
        None,
        "{fields:?} should be discarded"
    );
}

// ---- The /test contract ------------------------------------------------------------------

/// Test-service contract: "for each element, in order, the service POSTs `arguments` as a
/// JSON body to `url` … and replies 200 only after all calls are done."
#[test]
fn test_endpoint_calls_every_url_in_order_before_answering() {
    let exchange = exchange("/test", &[], |target| {
        serde_json::to_vec(&serde_json::json!([
            { "url": format!("{target}/first"), "arguments": [{ "n": 1 }] },
            { "url": format!("{target}/second"), "arguments": { "n": 2 } },
        ]))
        .unwrap()
    });
    assert_eq!(exchange.status, 200, "{}", exchange.response);
    let paths: Vec<&str> = exchange.callbacks.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["/first", "/second"]);
    assert_eq!(exchange.callbacks[0].body, r#"[{"n":1}]"#);
    assert_eq!(exchange.callbacks[1].body, r#"{"n":2}"#);
}

#[test]
fn test_endpoint_rejects_a_body_that_is_not_a_call_list() {
    let exchange = exchange("/test", &[], |_| b"{\"url\": 1}".to_vec());
    assert_eq!(exchange.status, 400, "{}", exchange.response);
    assert!(exchange.callbacks.is_empty());
}

// ---- traceparent -------------------------------------------------------------------------

/// Processing model, restarting a trace: "All properties - `trace-id`, `parent-id`,
/// `trace-flags` are generated."
#[test]
fn without_traceparent_a_new_valid_trace_starts() {
    let callback = propagated(&[]);
    let context = callback.traceparent();
    assert_ne!(context.trace_id.to_string(), TRACE_ID);
    assert_eq!(callback.tracestate(), None);
}

/// "A vendor receiving a `traceparent` request header MUST send it to outgoing requests.
/// It MAY mutate the value…" and "**Update `parent-id`**: The value of the parent-id field can
/// be set to the new value representing the ID of the current operation."
#[test]
fn a_valid_traceparent_is_continued_as_a_child() {
    let callback = assert_continues(&[("traceparent", TRACEPARENT)]);
    assert!(callback.traceparent().flags.is_sampled());
}

/// "Vendors MUST expect the header name in any case (upper, lower, mixed), and SHOULD send
/// the header name in lowercase."
#[test]
fn the_traceparent_header_name_is_matched_in_any_case() {
    for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
        assert_continues(&[(name, TRACEPARENT)]);
    }
    for name in ["trace-parent", "trace.parent"] {
        assert_restarts(&[(name, TRACEPARENT)]);
    }
}

/// RFC 7230 §3.2.4, which the header binding builds on: "The field value does not include
/// any leading or trailing whitespace: OWS occurring before the first non-whitespace octet
/// of the field value or after the last non-whitespace octet of the field value ought to be
/// excluded by parsers when extracting the field value from a header field."
#[test]
fn whitespace_around_the_traceparent_value_is_not_part_of_it() {
    for value in [
        format!(" {TRACEPARENT}"),
        format!("\t{TRACEPARENT}"),
        format!("{TRACEPARENT} "),
        format!("{TRACEPARENT}\t"),
        format!("\t {TRACEPARENT} \t"),
    ] {
        assert_continues(&[("traceparent", &value)]);
    }
}

/// RFC 7230 §3.2.2: "A sender MUST NOT generate multiple header fields with the same field
/// name in a message unless either the entire field value for that header field is defined as
/// a comma-separated list … or the header field is a well-known exception". `traceparent`
/// is neither, so two fields name two parents: the header is invalid and the trace restarts.
#[test]
fn repeated_traceparent_fields_restart_the_trace() {
    assert_restarts(&[
        (
            "traceparent",
            "00-12345678901234567890123456789011-1234567890123456-01",
        ),
        ("traceparent", TRACEPARENT),
        ("tracestate", "foo=1"),
    ]);
}

/// `version-format = trace-id "-" parent-id "-" trace-flags` for version `00`: nothing may
/// follow the flags.
#[test]
fn version_00_with_trailing_characters_restarts_the_trace() {
    assert_restarts(&[("traceparent", &format!("{TRACEPARENT}."))]);
    assert_restarts(&[(
        "traceparent",
        &format!("{TRACEPARENT}-what-the-future-will-be-like"),
    )]);
}

/// "If a higher version is detected, the implementation SHOULD try to parse it … Vendors MUST
/// check that the 2 characters are either at the end of the string or followed by a dash" and
/// "Vendors MUST use these fields to construct the new `traceparent` field according to the
/// highest version of the specification known to the implementation".
#[test]
fn a_future_version_is_parsed_by_its_version_00_prefix_and_sent_as_00() {
    let future = "cc-12345678901234567890123456789012-1234567890123456-01";
    for value in [
        future.to_owned(),
        format!("{future}-what-the-future-will-be-like"),
    ] {
        let callback = assert_continues(&[("traceparent", &value)]);
        assert!(callback.traceparent_text().starts_with("00-"));
    }
    assert_restarts(&[(
        "traceparent",
        &format!("{future}.what-the-future-will-be-like"),
    )]);
    // "If the size of the header is shorter than 55 characters, the vendor should not parse
    // the header and should restart the trace."
    assert_restarts(&[("traceparent", &future[..54])]);
}

/// "Version `ff` is invalid."
#[test]
fn version_ff_restarts_the_trace() {
    assert_restarts(&[(
        "traceparent",
        "ff-12345678901234567890123456789012-1234567890123456-01",
    )]);
}

/// "When the version prefix cannot be parsed (it's not 2 hex characters followed by a dash
/// (`-`)), the implementation should restart the trace."
#[test]
fn an_unparseable_version_restarts_the_trace() {
    for version in [".0", "0.", "000", "0000", "0", "0A"] {
        let value = format!("{version}-{TRACE_ID}-{PARENT_ID}-01");
        assert_restarts(&[("traceparent", &value)]);
    }
}

/// "If the `trace-id` value is invalid (for example if it contains non-allowed characters or
/// all zeros), vendors MUST ignore the `traceparent`."
#[test]
fn an_invalid_trace_id_restarts_the_trace() {
    for trace_id in [
        "00000000000000000000000000000000",
        ".2345678901234567890123456789012",
        "1234567890123456789012345678901.",
        "123456789012345678901234567890123",
        "1234567890123456789012345678901",
        "1234567890123456789012345678901A",
    ] {
        let value = format!("00-{trace_id}-{PARENT_ID}-01");
        assert_restarts(&[("traceparent", &value)]);
    }
}

/// "Vendors MUST ignore the `traceparent` when the `parent-id` is invalid (for example, if it
/// contains non-lowercase hex characters)." All zeros "is considered an invalid value".
#[test]
fn an_invalid_parent_id_restarts_the_trace() {
    for parent_id in [
        "0000000000000000",
        ".234567890123456",
        "123456789012345.",
        "12345678901234567",
        "123456789012345",
        "123456789012345A",
    ] {
        let value = format!("00-{TRACE_ID}-{parent_id}-01");
        assert_restarts(&[("traceparent", &value)]);
    }
}

/// `trace-flags = 2HEXDIGLC`: anything else is an invalid `traceparent`.
#[test]
fn invalid_trace_flags_restart_the_trace() {
    for flags in [".0", "0.", "001", "1", "0A"] {
        let value = format!("00-{TRACE_ID}-{PARENT_ID}-{flags}");
        assert_restarts(&[("traceparent", &value)]);
    }
}

/// "The behavior of other flags, such as (`00000100`) is not defined and is reserved for
/// future use. Vendors MUST set those to zero."
#[test]
fn unknown_flags_are_propagated_as_zero() {
    let value = format!("00-{TRACE_ID}-{PARENT_ID}-ff");
    let callback = assert_continues(&[("traceparent", &value)]);
    assert!(callback.traceparent_text().ends_with("-03"));
}

/// Level 2's `random-trace-id` flag, for a trace we start: "When starting or restarting a
/// trace (that is, when the participant generates a new `trace-id`) … If that flag is set, at
/// least the right-most 7 bytes of the `trace-id` MUST be selected randomly (or
/// pseudo-randomly) with uniform distribution over the interval [0..2^56-1]"; a participant
/// whose ids are generated that way should set it. Ours are drawn whole from a uniform
/// (pseudo-)random source.
#[test]
fn a_trace_we_start_sets_the_random_flag() {
    let context = propagated(&[]).traceparent();
    assert!(context.flags.is_random());
    assert!(context.flags.is_sampled());
}

/// For a trace we continue, the allowed mutations are updating `parent-id` and `sampled`,
/// restarting, and downgrading the version; "Vendors MUST NOT make any other mutations to
/// the `traceparent` header." So `random` goes on as received, set or not.
#[test]
fn a_continued_trace_keeps_the_callers_random_flag() {
    let not_random = assert_continues(&[("traceparent", TRACEPARENT)]).traceparent();
    assert!(!not_random.flags.is_random());
    let value = format!("00-{TRACE_ID}-{PARENT_ID}-02");
    let random = assert_continues(&[("traceparent", &value)]).traceparent();
    assert!(random.flags.is_random());
    assert!(!random.flags.is_sampled());
}

/// "**Update `parent-id`** … This is the most typical mutation and should be considered a
/// default": every outgoing call is its own operation, so each gets its own parent id, all in
/// the caller's trace.
#[test]
fn every_outgoing_call_gets_a_new_parent_id_in_the_same_trace() {
    let exchange = post_test(&[("traceparent", TRACEPARENT)], 3);
    assert_eq!(exchange.status, 200);
    let contexts: Vec<TraceContext> = exchange
        .callbacks
        .iter()
        .map(Callback::traceparent)
        .collect();
    assert_eq!(contexts.len(), 3);
    assert!(contexts.iter().all(|c| c.trace_id.to_string() == TRACE_ID));
    let mut parents: Vec<String> = contexts.iter().map(|c| c.span_id.to_string()).collect();
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 3);
    assert!(!parents.contains(&PARENT_ID.to_owned()));
}

/// Same with an invalid `traceparent`: a new trace, still a new parent id per call.
#[test]
fn every_outgoing_call_of_a_restarted_trace_gets_a_new_parent_id() {
    let zero = format!("00-00000000000000000000000000000000-{PARENT_ID}-01");
    let exchange = post_test(&[("traceparent", &zero)], 3);
    let contexts: Vec<TraceContext> = exchange
        .callbacks
        .iter()
        .map(Callback::traceparent)
        .collect();
    let mut parents: Vec<String> = contexts.iter().map(|c| c.span_id.to_string()).collect();
    parents.sort();
    parents.dedup();
    assert_eq!(parents.len(), 3);
    assert!(contexts.windows(2).all(|w| w[0].trace_id == w[1].trace_id));
}

// ---- tracestate: propagation -------------------------------------------------------------

/// "If the vendor failed to parse `traceparent`, it MUST NOT attempt to parse `tracestate`."
#[test]
fn tracestate_is_dropped_with_an_invalid_or_missing_traceparent() {
    assert_restarts(&[
        (
            "traceparent",
            "00-00000000000000000000000000000000-1234567890123456-01",
        ),
        ("tracestate", "foo=1"),
    ]);
    assert_restarts(&[("tracestate", "foo=1,bar=2")]);
}

/// "Vendors receiving a `tracestate` request header MUST send it to outgoing requests."
#[test]
fn tracestate_is_sent_on_with_the_continued_trace() {
    assert_eq!(
        tracestate_after(&["foo=1,bar=2"]).as_deref(),
        Some("foo=1,bar=2")
    );
}

/// "Note that the opposite is not true: failure to parse `tracestate` MUST NOT affect the
/// parsing of `traceparent`."
#[test]
fn an_invalid_tracestate_does_not_affect_traceparent() {
    let callback = assert_continues(&[("traceparent", TRACEPARENT), ("tracestate", "FOO=1")]);
    assert_eq!(callback.tracestate(), None);
}

/// "Vendors MUST expect the header name in any case (upper, lower, mixed)".
#[test]
fn the_tracestate_header_name_is_matched_in_any_case() {
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        let callback = assert_continues(&[("traceparent", TRACEPARENT_00), (name, "foo=1")]);
        assert_eq!(callback.tracestate().as_deref(), Some("foo=1"));
    }
    for name in ["trace-state", "trace.state"] {
        let callback = assert_continues(&[("traceparent", TRACEPARENT_00), (name, "foo=1")]);
        assert_eq!(callback.tracestate(), None);
    }
}

/// "Vendors MUST accept empty `tracestate` headers but SHOULD avoid sending them."
#[test]
fn an_empty_tracestate_is_accepted_and_not_sent() {
    assert_eq!(tracestate_after(&[""]), None);
    assert_eq!(tracestate_after(&["foo=1", ""]).as_deref(), Some("foo=1"));
    assert_eq!(tracestate_after(&["", "foo=1"]).as_deref(), Some("foo=1"));
}

/// "When receiving multiple `tracestate` header fields, they MUST be combined into a single
/// header according to RFC7230", and "The `tracestate` header SHOULD be sent as a single
/// field when possible".
#[test]
fn several_tracestate_fields_are_combined_in_order_and_sent_as_one() {
    let callback = assert_continues(&[
        ("traceparent", TRACEPARENT_00),
        ("tracestate", "foo=1,bar=2"),
        ("tracestate", "rojo=1,congo=2"),
        ("tracestate", "baz=3"),
    ]);
    assert_eq!(callback.tracestate_fields(), 1);
    assert_eq!(
        callback.tracestate().as_deref(),
        Some("foo=1,bar=2,rojo=1,congo=2,baz=3")
    );
}

/// "Only one entry per key is allowed because the entry represents that last position in the
/// trace." A list that repeats a key anyway is still inherited — the W3C suite's
/// `test_tracestate_duplicated_keys` "expects the tracestate to be inherited, and the
/// duplicated keys to be either kept as-is or one of them to be discarded" — so the service
/// keeps the first entry of the key and the rest of the list, in one header field or across
/// several.
#[test]
fn a_repeated_key_is_collapsed_to_its_first_entry_and_the_list_inherited() {
    for (fields, expected) in [
        (&["foo=1,foo=1"][..], "foo=1"),
        (&["foo=1,foo=2"], "foo=1"),
        (&["foo=1", "foo=1"], "foo=1"),
        (&["foo=1", "foo=2"], "foo=1"),
        (&["foo=1,bar=2,baz=3,foo=4"], "foo=1,bar=2,baz=3"),
        (
            &["rojo=1,congo=2", "congo=3,tenant@rojo=4"],
            "rojo=1,congo=2,tenant@rojo=4",
        ),
    ] {
        assert_eq!(
            tracestate_after(fields).as_deref(),
            Some(expected),
            "{fields:?}"
        );
    }
}

/// Distinct keys that merely resemble each other are no repetition: `foo`, `foo@tenant` and
/// `tenant@foo` are three keys.
#[test]
fn keys_that_only_look_alike_are_all_kept() {
    assert_eq!(
        tracestate_after(&["foo=1,foo@tenant=2,tenant@foo=3"]).as_deref(),
        Some("foo=1,foo@tenant=2,tenant@foo=3")
    );
}

// ---- tracestate: grammar -----------------------------------------------------------------

/// `key = ( lcalpha / DIGIT ) 0*255 ( keychar )` with
/// `keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"`, and
/// `value = 0*255(chr) nblk-chr` with `nblk-chr = %x21-2B / %x2D-3C / %x3E-7E`,
/// `chr = %x20 / nblk-chr`: every allowed character is accepted and kept.
#[test]
fn every_character_the_grammar_allows_is_accepted() {
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let tenant_key = format!("{key}@a-z0-9_-*/");
    let value: String = (0x20u8..=0x7e)
        .filter(|c| *c != b',' && *c != b'=')
        .map(char::from)
        .collect();
    for key in [key.to_owned(), tenant_key] {
        let member = format!("{key}={value}");
        let sent = tracestate_after(&[&member]).expect("kept");
        let state = TraceState::parse(&sent).unwrap();
        assert_eq!(state.get(&key), Some(value.as_str()));
    }
}

/// "A `key` MUST begin with a lowercase letter or a digit and contain up to 256 characters
/// including lowercase letters (`a`-`z`), digits (`0`-`9`), underscores (`_`), dashes (`-`),
/// asterisks (`*`), forward slashes (`/`), and at signs (`@`)": no spaces, uppercase, dots, or
/// other first characters.
#[test]
fn an_illegal_key_discards_the_tracestate() {
    for member in [
        "=1",
        "foo =1",
        "FOO=1",
        "fOo=1",
        "foo.bar=1",
        "_foo=1",
        "-foo=1",
        "*foo=1",
        "/foo=1",
        "@foo=1",
    ] {
        discarded(&[member, "bar=2"]);
    }
    assert_eq!(tracestate_after(&["1foo=1"]).as_deref(), Some("1foo=1"));
}

/// Level 2 has no separate multi-tenant rule: "at signs (`@`)" are ordinary key characters,
/// so `tenant@system` keys (the multi-tenant convention) are accepted, as are keys Level 1's
/// `tenant-id "@" system-id` rule rejected.
#[test]
fn multi_tenant_keys_are_keys_with_at_signs() {
    for member in [
        "fw529a3039@dt=1",
        "001@xyz=1",
        "foo@=1",
        "foo@@bar=1",
        "foo@bar@baz=1",
    ] {
        assert_eq!(
            tracestate_after(&[member, "bar=2"]).as_deref(),
            Some(format!("{member},bar=2").as_str())
        );
    }
}

/// A key holds "up to 256 characters", at signs included.
#[test]
fn key_lengths_are_bounded_exactly() {
    let kept = |member: String| tracestate_after(&["foo=1", &member]).is_some();
    assert!(kept(format!("{}=1", "z".repeat(256))));
    assert!(!kept(format!("{}=1", "z".repeat(257))));
    assert!(kept(format!("{}@{}=1", "t".repeat(241), "v".repeat(14))));
    assert!(kept(format!("{}@v=1", "t".repeat(242))));
    assert!(kept(format!("t@{}=1", "v".repeat(15))));
    assert!(kept(format!("{}@{}=1", "t".repeat(200), "v".repeat(55))));
    assert!(!kept(format!("{}@{}=1", "t".repeat(200), "v".repeat(56))));
}

/// `list-member = (key "=" value) / OWS`: a member that is not empty is a key, `=` and a
/// value, so a bare word or a key without `=` is no member, and the header does not parse:
/// "If the `tracestate` header cannot be parsed the vendor MAY discard the entire header."
#[test]
fn a_member_that_is_not_key_equals_value_discards_the_tracestate() {
    discarded(&["foo"]);
    discarded(&["foo=1,bar"]);
    discarded(&["foo=1, bar ,baz=3"]);
}

/// "When receiving multiple `tracestate` header fields, they MUST be combined into a single
/// header according to RFC7230": the combined header is what parses or not, so an invalid
/// member in any one field discards all of them, valid fields included.
#[test]
fn an_invalid_member_in_one_field_discards_every_field() {
    discarded(&["foo=1", "BAR=2"]);
    discarded(&["foo=1", "bar=2,baz=a=b"]);
    assert_eq!(
        tracestate_after(&["foo=1", "bar=2"]).as_deref(),
        Some("foo=1,bar=2")
    );
}

/// "The value is an opaque string containing up to 256 printable ASCII characters (i.e., the
/// range 0x20 to 0x7E) except comma (,) and equals (=)": a tab, or a byte beyond ASCII (sent as
/// obs-text, which HTTP allows in a field value), is no value character.
#[test]
fn a_value_with_a_character_outside_printable_ascii_discards_the_tracestate() {
    discarded(&["foo=a\tb"]);
    discarded(&["foo=caf\u{e9}"]);
    assert_eq!(tracestate_after(&["foo=a b"]).as_deref(), Some("foo=a b"));
}

/// "The value is an opaque string containing up to 256 printable ASCII characters … except
/// comma (,) and (=)" which must end with a non-space character.
#[test]
fn an_illegal_value_discards_the_tracestate() {
    discarded(&["foo=bar=baz"]);
    discarded(&["foo=,bar=3"]);
    discarded(&["foo= "]);
    discarded(&[&format!("foo={}", "v".repeat(257))]);
    assert!(tracestate_after(&[&format!("foo={}", "v".repeat(256))]).is_some());
}

/// "This means that all leading spaces MUST be preserved as part of the value and all
/// trailing spaces are considered to be optional whitespace characters not part of the
/// value."
#[test]
fn leading_spaces_in_a_value_are_kept_and_trailing_ones_are_not() {
    assert_eq!(tracestate_after(&["foo=  1  "]).as_deref(), Some("foo=  1"));
}

/// "Spaces and horizontal tabs surrounding `list-member`s are ignored."
#[test]
fn whitespace_around_list_members_is_ignored() {
    for fields in [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
    ] {
        assert_eq!(
            tracestate_after(&[fields]).as_deref(),
            Some("foo=1,bar=2,baz=3")
        );
    }
    for field in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        assert_eq!(tracestate_after(&[field]).as_deref(), Some("foo=1"));
    }
}

/// "Empty and whitespace-only list members are allowed."
#[test]
fn empty_and_whitespace_only_members_are_allowed() {
    assert_eq!(
        tracestate_after(&["foo=1,, ,\t,bar=2,"]).as_deref(),
        Some("foo=1,bar=2")
    );
}

/// "There can be a maximum of 32 `list-member`s in a `list`."
#[test]
fn at_most_32_list_members() {
    let members = |n: usize| -> Vec<String> {
        (1..=n)
            .map(|i| format!("bar{i:02}={i:02}"))
            .collect::<Vec<_>>()
            .chunks(10)
            .map(|chunk| chunk.join(","))
            .collect()
    };
    let fields = members(MAX_MEMBERS);
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let sent = tracestate_after(&fields).expect("32 members are kept");
    assert_eq!(TraceState::parse(&sent).unwrap().len(), 32);
    let fields = members(MAX_MEMBERS + 1);
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    discarded(&fields);
}

// ---- tracestate: limits and mutation -----------------------------------------------------

/// "Vendors SHOULD propagate at least 512 characters of a combined header."
#[test]
fn a_512_character_tracestate_is_propagated_whole() {
    // Four members of 127 characters and three commas: exactly 511; one more key char: 512.
    let mut members: Vec<String> = (0..4)
        .map(|i| format!("k{i}={}", "v".repeat(124)))
        .collect();
    members[0].insert(1, 'x');
    let header = members.join(",");
    assert_eq!(header.len(), MAX_PROPAGATED_CHARS);
    assert_eq!(tracestate_after(&[&header]), Some(header));
}

/// "In a situation where `tracestate` needs to be truncated due to size limitations, the
/// vendor MUST truncate whole entries. Entries larger than `128` characters long SHOULD be
/// removed first. Then entries SHOULD be removed starting from the end of `tracestate`."
#[test]
fn a_long_tracestate_loses_large_entries_first_then_entries_from_the_end() {
    let large = format!("large={}", "l".repeat(200));
    let small: Vec<String> = (0..10)
        .map(|i| format!("s{i}={}", "v".repeat(60)))
        .collect();
    let mut members = vec![small[0].clone(), large, small[1].clone()];
    members.extend(small[2..].iter().cloned());
    let sent = tracestate_after(&[&members.join(",")]).expect("some entries kept");
    let state = TraceState::parse(&sent).unwrap();
    let keys: Vec<&str> = state.entries().map(|(k, _)| k).collect();
    // 63 characters per small entry: eight and seven commas make 511; nine would make 575.
    assert_eq!(
        keys,
        ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"],
        "{sent}"
    );
    assert!(sent.len() <= MAX_PROPAGATED_CHARS);
}

/// "Modified keys MUST be moved to the beginning (left) of the list", "The new key-value pair
/// SHOULD be added to the beginning of the list", and "the order of unmodified key/value pairs
/// MUST be preserved". (Our service adds no entry of its own, so this is the codec.)
#[test]
fn a_mutated_entry_moves_to_the_front_and_the_rest_keep_their_order() {
    let state = TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,foo=1").unwrap();
    let updated = state.with_entry("congo", "ucfJifl5GOE").unwrap();
    assert_eq!(
        updated.header(),
        "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7,foo=1"
    );
    let added = updated.with_entry("tenant@cal", "x").unwrap();
    assert_eq!(
        added.header(),
        "tenant@cal=x,congo=ucfJifl5GOE,rojo=00f067aa0ba902b7,foo=1"
    );
    assert!(state.with_entry("Bad", "x").is_err());
    assert!(state.with_entry("ok", "a,b").is_err());
}

/// Adding to a full list keeps it within "a maximum of 32 `list-member`s" by dropping from the
/// end, as truncation does.
#[test]
fn adding_to_a_full_list_drops_the_rightmost_entry() {
    let full: Vec<String> = (0..32).map(|i| format!("k{i}=1")).collect();
    let state = TraceState::parse(&full.join(",")).unwrap();
    let added = state.with_entry("new", "1").unwrap();
    assert_eq!(added.len(), 32);
    assert_eq!(added.entries().next(), Some(("new", "1")));
    assert_eq!(added.get("k31"), None);
    assert_eq!(added.get("k30"), Some("1"));
}
