//! No module imports a module that imports it back. Reads every `harness/**/*.rs` (comments and
//! string literals blanked out), collects its `crate::X` references (`use crate::{a, b::c}`
//! groups included) and, for files beside each other in one module, their `super::sibling`
//! references, then asserts that both graphs are acyclic: the graph of top-level modules, and
//! within each module directory the graph of its files other than `mod.rs` (a `mod.rs` declares
//! and re-exports its children, so it is left out).
//!
//! `cargo test --test module_cycles -- --nocapture` prints the top-level graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles that exist today and are being removed elsewhere: each is allowed while it exists, and
/// the test fails once it is gone, so the entry cannot outlive it. Empty is the goal.
const KNOWN_CYCLES: &[&[&str]] = &[];

/// A directed graph: node → the nodes it references.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn module_graphs_have_no_cycles_beyond_the_known_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let files = rust_files(&root);
    assert!(
        files.len() > 20,
        "found only {} files under {root:?}",
        files.len()
    );
    let (top, siblings) = graphs(&root, &files);
    print_graph("top-level modules", &top);

    let mut problems = Vec::new();
    let mut found = Vec::new();
    for (scope, graph) in std::iter::once((String::new(), &top))
        .chain(siblings.iter().map(|(d, g)| (format!("{d}/"), g)))
    {
        for component in cyclic_components(graph) {
            let named: BTreeSet<String> = component.iter().map(|n| format!("{scope}{n}")).collect();
            let cycle = find_cycle(graph, &component).unwrap_or_default();
            let shown = cycle
                .iter()
                .map(|n| format!("{scope}{n}"))
                .collect::<Vec<_>>()
                .join(" → ");
            if KNOWN_CYCLES
                .iter()
                .any(|known| known.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>() == named)
            {
                println!("known cycle, allowed for now: {shown}");
            } else {
                problems.push(format!(
                    "cycle: {shown} (all of {named:?} reach each other)"
                ));
            }
            found.push(named);
        }
    }
    for known in KNOWN_CYCLES {
        let known: BTreeSet<String> = known.iter().map(|k| k.to_string()).collect();
        if !found.contains(&known) {
            problems.push(format!(
                "{known:?} is no longer a cycle: remove it from KNOWN_CYCLES"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_outcome_imports_only_what_records_the_facts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let (top, _) = graphs(&root, &rust_files(&root));
    let allowed = set(&["clock", "mocks", "trace"]);
    let imported = top.get("outcome").expect("an outcome module");
    assert!(
        imported.is_subset(&allowed),
        "outcome imports {:?}; it may import only {allowed:?}",
        imported.difference(&allowed).collect::<Vec<_>>()
    );
}

#[test]
fn the_receiver_imports_neither_the_runner_nor_the_reports() {
    // The runner imports `receive`; `report` renders what it builds, from `cli`.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("harness");
    let (top, _) = graphs(&root, &rust_files(&root));
    let allowed = set(&["clock", "contract", "trace"]);
    let imported = top.get("receive").expect("a receive module");
    assert!(
        imported.is_subset(&allowed),
        "receive imports {:?}; it may import only {allowed:?}",
        imported.difference(&allowed).collect::<Vec<_>>()
    );
}

#[test]
fn the_cycle_finder_finds_a_hand_made_cycle_and_nothing_in_a_tree() {
    let graph = graph_of(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "e")]);
    let components = cyclic_components(&graph);
    assert_eq!(components, [set(&["a", "b", "c"])]);
    assert_eq!(
        find_cycle(&graph, &components[0]),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let tree = graph_of(&[("a", "b"), ("a", "c"), ("b", "c"), ("c", "d")]);
    assert!(cyclic_components(&tree).is_empty());
    // Two nodes naming each other are a cycle; a node naming itself is not a module cycle.
    let pair = graph_of(&[("x", "y"), ("y", "x"), ("z", "z")]);
    assert_eq!(cyclic_components(&pair), [set(&["x", "y"])]);
}

#[test]
fn references_are_read_from_code_not_from_comments_or_strings() {
    let text = r#"
//! Uses [`crate::report`] only in docs.
use crate::{clock, trace::{self, Captured}, mocks::stripe};
use crate::booking::X; // crate::query in a comment
/* crate::import in a block /* nested */ comment */
const URL: &str = "https://example.com/crate::vary";
const RAW: &[u8] = br"crate::query \";
let c = 'c'; fn f<'a>(x: &'a str) {}
pub(crate) fn g() { crate::scenario::Scenario::load(); }
"#;
    let refs = crate_references(&blank_comments_and_strings(text));
    assert_eq!(
        refs,
        set(&["booking", "clock", "mocks", "scenario", "trace"])
    );
}

#[test]
fn super_paths_resolve_through_inline_modules() {
    let text = "use super::ids::SpanId;\nmod tests {\n    use super::*;\n    use super::super::prefix::Seed;\n}\n";
    assert_eq!(
        sibling_references(&blank_comments_and_strings(text)),
        set(&["ids", "prefix"])
    );
}

// ----- reading the sources -----

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The top-level graph and, per module directory (`trace`, `booking`, ...), its files' graph.
fn graphs(root: &Path, files: &[PathBuf]) -> (Graph, BTreeMap<String, Graph>) {
    let mut top = Graph::new();
    let mut siblings: BTreeMap<String, Graph> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(root).expect("under the root");
        let parts: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        // The crate roots declare modules; main.rs is the binary and reaches the library by name.
        if parts == ["lib"] || parts == ["main"] {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        let code = blank_comments_and_strings(&text);
        let module = parts[0].clone();
        let refs = top.entry(module.clone()).or_default();
        refs.extend(crate_references(&code).into_iter().filter(|r| *r != module));

        // Siblings: `dir/name.rs` beside other files of `dir`; `mod.rs` is the directory itself.
        let Some((name, dir)) = parts.split_last() else {
            continue;
        };
        if dir.is_empty() || name == "mod" {
            continue;
        }
        let dir = dir.join("/");
        let mut named = sibling_references(&code);
        let absolute = format!("crate::{}::", dir.replace('/', "::"));
        named.extend(paths_after(&code, &absolute));
        let graph = siblings.entry(dir).or_default();
        graph
            .entry(name.clone())
            .or_default()
            .extend(named.into_iter().filter(|n| n != name));
    }
    // A sibling edge counts only when it names a file of that directory.
    for graph in siblings.values_mut() {
        let nodes: BTreeSet<String> = graph.keys().cloned().collect();
        for targets in graph.values_mut() {
            targets.retain(|t| nodes.contains(t));
        }
    }
    (top, siblings)
}

/// The text with every comment and string or character literal replaced by spaces, line
/// breaks kept, so that what remains is code.
fn blank_comments_and_strings(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && starts_literal(&chars, i) {
            // A raw string: r"…", r#"…"#, …
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = i + 2 + hashes;
            let rest: String = chars[body_start..].iter().collect();
            let body_len = rest
                .find(&end)
                .map_or(rest.chars().count(), |b| rest[..b].chars().count());
            for &ch in &chars[i..(body_start + body_len + end.len()).min(chars.len())] {
                blank(&mut out, ch);
            }
            i = body_start + body_len + end.len();
        } else if c == '"' {
            blank(&mut out, c);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                let step = if chars[i] == '\\' { 2 } else { 1 };
                for &ch in &chars[i..(i + step).min(chars.len())] {
                    blank(&mut out, ch);
                }
                i += step;
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{…}'.
            let close = chars[i + 2..]
                .iter()
                .position(|&ch| ch == '\'')
                .map_or(chars.len(), |p| i + 2 + p + 1);
            for &ch in &chars[i..close.min(chars.len())] {
                blank(&mut out, ch);
            }
            i = close;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` opens a raw string (`r"`, `br"`) rather than ending an identifier.
fn starts_literal(chars: &[char], i: usize) -> bool {
    let before = |n: usize| i.checked_sub(n).and_then(|j| chars.get(j)).copied();
    !is_ident(before(1)) || (before(1) == Some('b') && !is_ident(before(2)))
}

fn is_ident(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Top-level modules named after `crate::`, groups included.
fn crate_references(code: &str) -> BTreeSet<String> {
    paths_after(code, "crate::")
}

/// The first segment of every path that starts with `prefix` (which ends in `::`), taking every
/// member of a `{…}` group.
fn paths_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(prefix) {
        let start = from + at;
        from = start + prefix.len();
        if is_ident(code[..start].chars().next_back()) {
            continue;
        }
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            found.extend(group_heads(group));
        } else if let Some(name) = ident_at(rest) {
            found.insert(name);
        }
    }
    found
}

/// The first segment of each member of a `{a, b::c, d::{e}}` group (`group` starts after `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expect_head = true,
            c if c.is_whitespace() => {}
            _ if expect_head && depth == 0 => {
                expect_head = false;
                if let Some(name) = ident_at(&group[i..]) {
                    if name != "self" {
                        heads.push(name);
                    }
                }
            }
            _ => {}
        }
    }
    heads
}

fn ident_at(text: &str) -> Option<String> {
    let name: String = text
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit())).then_some(name)
}

/// Siblings named by `super::name` paths that leave this file for its parent module, counting
/// the inline modules (`mod tests { … }`) a path sits in: there `super::` is this file.
fn sibling_references(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Brace depth at which each enclosing inline module opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut pending_mod = false;
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let at_word = !is_ident(code[..i].chars().next_back());
        if at_word && rest.starts_with("mod ") {
            pending_mod = true;
            i += 4;
            continue;
        }
        match bytes[i] {
            b'{' => {
                depth += 1;
                if pending_mod {
                    inline.push(depth);
                }
                pending_mod = false;
            }
            b'}' => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            b';' => pending_mod = false,
            _ => {}
        }
        if at_word && rest.starts_with("super::") {
            let mut levels = 0;
            let mut path = rest;
            while let Some(after) = path.strip_prefix("super::") {
                levels += 1;
                path = after;
            }
            if levels == inline.len() + 1 {
                if let Some(group) = path.strip_prefix('{') {
                    found.extend(group_heads(group));
                } else if let Some(name) = ident_at(path) {
                    found.insert(name);
                }
            }
            i += rest.len() - path.len();
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    found
}

// ----- the graph -----

/// Every strongly connected component of more than one node (Tarjan's algorithm), each sorted.
fn cyclic_components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = BTreeSet::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.insert(member.to_owned());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                state.components.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.components.sort();
    state.components
}

/// One cycle through the component's smallest node, as a path that ends where it starts.
fn find_cycle(graph: &Graph, component: &BTreeSet<String>) -> Option<Vec<String>> {
    let start = component.iter().next()?;
    // Breadth-first from the start, inside the component, back to the start: a shortest cycle.
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.as_str()]);
    while let Some(node) = queue.pop_front() {
        for next in graph
            .get(node)
            .into_iter()
            .flatten()
            .filter(|n| component.contains(*n))
        {
            if next == start {
                let mut back = Vec::new();
                let mut at = node;
                while at != start {
                    back.push(at.to_owned());
                    at = came_from[at];
                }
                let mut cycle = vec![start.clone()];
                cycle.extend(back.into_iter().rev());
                cycle.push(start.clone());
                return Some(cycle);
            }
            if !came_from.contains_key(next.as_str()) && next != start {
                came_from.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

fn print_graph(title: &str, graph: &Graph) {
    println!("{title}:");
    for (node, targets) in graph {
        let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
        println!("  {node} → {}", targets.join(", "));
    }
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut graph = Graph::new();
    for (from, to) in edges {
        graph
            .entry((*from).into())
            .or_default()
            .insert((*to).into());
        graph.entry((*to).into()).or_default();
    }
    graph
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}
