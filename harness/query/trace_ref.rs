//! How a user names a trace on the command line: its full W3C id, a prefix of it that no other
//! trace shares, or the alias the views give it (`trace_1`, the first trace of its replay in
//! order of first appearance). One reading for every command that takes a trace (`query
//! trace-operations`, `import --trace`).

use std::fmt::Write as _;

/// The longest list of traces an error message spells out.
const LISTED: usize = 8;

/// A trace as the lines read so far show it, in order of first appearance: its id (32
/// lowercase hex digits) and the replay its lines say they came from (an NDJSON line's
/// `scenario`), if they say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownTrace {
    /// The W3C trace id, lowercase hex.
    pub id: String,
    /// The replay (scenario) it belongs to, when the lines name one.
    pub replay: Option<String>,
}

/// Why a trace reference names no single trace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceRefError {
    /// Nothing read has that id, prefix or alias.
    #[error("no trace `{wanted}` in the lines read: {}", listing(.known))]
    NotFound {
        /// What the user wrote.
        wanted: String,
        /// The traces there are, with their aliases.
        known: Vec<String>,
    },
    /// A prefix that begins more than one trace id.
    #[error(
        "`{wanted}` begins {} trace ids ({}); give more of the id",
        .candidates.len(),
        first_few(.candidates)
    )]
    AmbiguousPrefix {
        /// What the user wrote.
        wanted: String,
        /// The ids it begins.
        candidates: Vec<String>,
    },
    /// An alias that several replays in the lines each give to one of their traces.
    #[error(
        "`{wanted}` names a trace in each of {} replays ({}); give the trace id the tree's header shows",
        .candidates.len(),
        first_few(.candidates)
    )]
    AmbiguousAlias {
        /// What the user wrote.
        wanted: String,
        /// `<replay> = <id>` for each replay that has such a trace.
        candidates: Vec<String>,
    },
    /// Neither hex digits nor an alias.
    #[error(
        "`{wanted}` is not a trace id: expected 32 hex digits, a prefix of them, or an alias such as `trace_1`"
    )]
    NotATraceId {
        /// What the user wrote.
        wanted: String,
    },
}

fn first_few(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(LISTED)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > LISTED {
        let _ = write!(out, ", and {} more", items.len() - LISTED);
    }
    out
}

fn listing(known: &[String]) -> String {
    match known.len() {
        0 => "they hold no trace".to_owned(),
        n => format!("they hold {n} trace(s): {}", first_few(known)),
    }
}

/// The id of the one trace `wanted` names among `known` (in order of first appearance): a full
/// id, a unique prefix of one, or an alias `trace_N` — the N-th trace of its replay, unambiguous
/// when only one replay in `known` has an N-th trace. Hex is read in any case.
///
/// ```
/// use trace_harness::query::{resolve_trace_id, KnownTrace};
/// let known = [
///     KnownTrace { id: "4bf92f3577b34da6a3ce929d0e0e4736".into(), replay: None },
///     KnownTrace { id: "5a0e8c1d2b3f4a6978e1d0c2b4a69788".into(), replay: None },
/// ];
/// assert_eq!(resolve_trace_id("trace_2", &known).unwrap(), known[1].id);
/// assert_eq!(resolve_trace_id("4BF9", &known).unwrap(), known[0].id);
/// assert!(resolve_trace_id("trace_3", &known).is_err());
/// ```
pub fn resolve_trace_id(wanted: &str, known: &[KnownTrace]) -> Result<String, TraceRefError> {
    let wanted = wanted.trim();
    if let Some(n) = alias_number(wanted) {
        return by_alias(wanted, n, known);
    }
    if wanted.is_empty() || wanted.len() > 32 || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TraceRefError::NotATraceId {
            wanted: wanted.to_owned(),
        });
    }
    let hex = wanted.to_ascii_lowercase();
    let mut candidates: Vec<&str> = Vec::new();
    for trace in known {
        if trace.id.starts_with(&hex) && !candidates.contains(&trace.id.as_str()) {
            candidates.push(&trace.id);
        }
    }
    match candidates.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(not_found(wanted, known)),
        many => Err(TraceRefError::AmbiguousPrefix {
            wanted: wanted.to_owned(),
            candidates: many.iter().map(|id| (*id).to_owned()).collect(),
        }),
    }
}

/// `N` of `trace_N` (N ≥ 1), as the views write it.
fn alias_number(wanted: &str) -> Option<usize> {
    let digits = wanted.strip_prefix("trace_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&n| n >= 1)
}

/// Each replay's traces, replays in order of first appearance.
fn by_replay(known: &[KnownTrace]) -> Vec<(Option<&str>, Vec<&str>)> {
    let mut replays: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
    for trace in known {
        let replay = trace.replay.as_deref();
        match replays.iter_mut().find(|(r, _)| *r == replay) {
            Some((_, ids)) if ids.contains(&trace.id.as_str()) => {}
            Some((_, ids)) => ids.push(&trace.id),
            None => replays.push((replay, vec![&trace.id])),
        }
    }
    replays
}

fn by_alias(wanted: &str, n: usize, known: &[KnownTrace]) -> Result<String, TraceRefError> {
    let found: Vec<(Option<&str>, &str)> = by_replay(known)
        .into_iter()
        .filter_map(|(replay, ids)| Some((replay, *ids.get(n - 1)?)))
        .collect();
    match found.as_slice() {
        [(_, id)] => Ok((*id).to_owned()),
        [] => Err(not_found(wanted, known)),
        many => Err(TraceRefError::AmbiguousAlias {
            wanted: wanted.to_owned(),
            candidates: many
                .iter()
                .map(|(replay, id)| format!("{} = {id}", replay.unwrap_or("(no scenario)")))
                .collect(),
        }),
    }
}

fn not_found(wanted: &str, known: &[KnownTrace]) -> TraceRefError {
    let mut listed = Vec::new();
    for (replay, ids) in by_replay(known) {
        for (i, id) in ids.iter().enumerate() {
            listed.push(match replay {
                Some(replay) => format!("{replay} trace_{} = {id}", i + 1),
                None => format!("trace_{} = {id}", i + 1),
            });
        }
    }
    TraceRefError::NotFound {
        wanted: wanted.to_owned(),
        known: listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const B: &str = "4bf9aaaa77b34da6a3ce929d0e0e4736";
    const C: &str = "0af7651916cd43dd8448eb211c80319c";

    fn known(traces: &[(&str, Option<&str>)]) -> Vec<KnownTrace> {
        traces
            .iter()
            .map(|(id, replay)| KnownTrace {
                id: (*id).to_owned(),
                replay: replay.map(str::to_owned),
            })
            .collect()
    }

    fn check(wanted: &str, traces: &[(&str, Option<&str>)], expected: Result<&str, &str>) {
        let got = resolve_trace_id(wanted, &known(traces)).map_err(|e| e.to_string());
        match expected {
            Ok(id) => assert_eq!(got, Ok(id.to_owned()), "{wanted}"),
            Err(fragment) => {
                let message = got.expect_err(wanted);
                assert!(message.contains(fragment), "{wanted}: {message}");
            }
        }
    }

    #[test]
    fn a_full_id_names_its_trace() {
        check(A, &[(C, None), (A, None)], Ok(A));
        check(&A.to_uppercase(), &[(A, None)], Ok(A));
        check(&format!(" {A}\n"), &[(A, None)], Ok(A));
    }

    #[test]
    fn a_prefix_names_the_one_trace_it_begins() {
        check("0af7", &[(A, None), (C, None)], Ok(C));
        check("4bf92", &[(A, None), (B, None)], Ok(A));
        check(
            "4bf9",
            &[(A, None), (B, None)],
            Err("`4bf9` begins 2 trace ids (4bf92f3577b34da6a3ce929d0e0e4736, 4bf9aaaa"),
        );
    }

    #[test]
    fn an_alias_counts_traces_by_first_appearance_within_their_replay() {
        check("trace_1", &[(C, None), (A, None)], Ok(C));
        check("trace_2", &[(C, None), (A, None), (C, None)], Ok(A));
        // Two replays each have a trace_1; only one has a trace_2.
        let two = [
            (A, Some("calendar_failure")),
            (C, Some("slow_payment")),
            (B, Some("slow_payment")),
        ];
        check("trace_2", &two, Ok(B));
        check(
            "trace_1",
            &two,
            Err("`trace_1` names a trace in each of 2 replays (calendar_failure = 4bf92f35"),
        );
    }

    #[test]
    fn what_names_nothing_is_an_error_listing_what_there_is() {
        check(
            "trace_3",
            &[(A, None), (C, None)],
            Err("no trace `trace_3` in the lines read: they hold 2 trace(s): trace_1 = 4bf92f3577b34da6a3ce929d0e0e4736, trace_2 = 0af7"),
        );
        check(
            "ffff",
            &[(A, Some("s"))],
            Err("they hold 1 trace(s): s trace_1 = 4bf9"),
        );
        check("ffff", &[], Err("they hold no trace"));
        check("trace_0", &[(A, None)], Err("is not a trace id"));
        check("trace_x", &[(A, None)], Err("is not a trace id"));
        check("span_001", &[(A, None)], Err("is not a trace id"));
        check("", &[(A, None)], Err("is not a trace id"));
        check(&format!("{A}0"), &[(A, None)], Err("is not a trace id"));
    }

    #[test]
    fn a_long_listing_is_cut_short() {
        let ids: Vec<String> = (0..10).map(|i| format!("{i:032x}")).collect();
        let traces: Vec<(&str, Option<&str>)> = ids.iter().map(|id| (id.as_str(), None)).collect();
        check("fff", &traces, Err(", and 2 more"));
    }
}
