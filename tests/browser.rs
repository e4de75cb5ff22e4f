//! The HTML waterfall of every scenario, and a diff page, in a real browser (headless Chromium
//! at 1400×900): no two text labels overlap, every span has a visible bar and every log line
//! the seed-style view shows a visible marker on its bar (and a line in the log), every gap label states the gap's length
//! and every idle stretch of a minute or more is such a gap, and the page needs no sideways
//! scrolling. A screenshot and the page of each are kept in `$TRACE_HARNESS_ARTIFACTS`.
//!
//! How the page is measured: `chromium --headless --dump-dom` on the page with a probe script
//! appended, which reads every element's `getBoundingClientRect()` after layout and writes the
//! measurements into the DOM that `--dump-dom` prints. Debian's `chromium` package is all it
//! needs: no chromedriver, no WebDriver or DevTools client crate, no second process to keep in
//! step with the browser's version. The probe is the test's; the page ships none of it.
//!
//! The tests need a browser, so a plain `cargo test` lists them as ignored rather than passing
//! them unseen; `.ci/browser-test` installs Chromium and runs them with `--include-ignored`.
//! Run, they fail when Chromium is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use trace_harness::clock::parse_duration;
use trace_harness::report::epoch::Epoch;
use trace_harness::report::html::waterfall;
use trace_harness::report::in_seed_view;
use trace_harness::trace::{Aliases, Captured};
use trace_harness::ReplayOutcome;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Appended to the page under test: measures it and writes the result, percent-encoded JSON,
/// into a `<pre id="probe">` (encoded so that no text of the page can break it).
const PROBE: &str = r#"<script>
(function () {
  function box(e) {
    var r = e.getBoundingClientRect();
    var s = getComputedStyle(e);
    var shown = s.visibility !== 'hidden' && s.display !== 'none' && Number(s.opacity) > 0;
    return [r.left, r.top, r.width, shown ? r.height : 0];
  }
  var all = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var out = {
    width: document.documentElement.scrollWidth,
    texts: all('.txt').map(function (e) { return { text: e.textContent, cls: e.className, box: box(e) }; }),
    charts: all('.waterfall').map(function (chart) {
      return {
        id: chart.id,
        rows: all('.row', chart).map(function (row) {
          var bar = row.querySelector('.bar');
          return {
            span: row.getAttribute('data-span'),
            lane: box(row.querySelector('.lane')),
            bar: bar ? box(bar) : null,
            markers: all('.ev', row).map(function (m) { return { line: Number(m.getAttribute('data-line')), box: box(m) }; })
          };
        }),
        logs: all('.log', chart).map(function (l) { return { line: Number(l.getAttribute('data-line')), box: box(l) }; }),
        gaps: all('.gap-label', chart).map(function (g) {
          return { from: Number(g.getAttribute('data-from-us')), to: Number(g.getAttribute('data-to-us')), text: g.textContent, box: box(g) };
        }),
        ticks: all('.tick', chart).map(function (t) { return { us: Number(t.getAttribute('data-us')), box: box(t) }; })
      };
    })
  };
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = encodeURIComponent(JSON.stringify(out));
  document.body.appendChild(pre);
})();
</script>"#;

fn chromium(args: &[&str], page: &Path) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: the browser test cannot run (.ci/browser-test installs it)"
    );
    let profile = tempfile::tempdir().unwrap();
    let profile_arg = format!("--user-data-dir={}", profile.path().display());
    let url = format!("file://{}", page.display());
    // `timeout` bounds a browser that hangs; Debian's coreutils always has it.
    let output = Command::new("timeout")
        .arg("90")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            // Containers often have a tiny /dev/shm.
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            &profile_arg,
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("timeout and chromium run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Where screenshots and pages are kept.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("TRACE_HARNESS_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Loads `html` (as `name.html`) with the probe, returns its measurements, and keeps a
/// screenshot and the page as artifacts.
fn measured(name: &str, html: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join(format!("{name}.html"));
    assert!(html.contains("</body>"));
    std::fs::write(
        &page,
        html.replacen("</body>", &format!("{PROBE}</body>"), 1),
    )
    .unwrap();
    let dom = String::from_utf8(chromium(&["--dump-dom"], &page).stdout).unwrap();
    let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let measurements: Value = serde_json::from_str(&percent_decoded(&dom[start..end])).unwrap();

    let artifacts = artifacts();
    let shot = artifacts.join(format!("{name}.png"));
    std::fs::write(&page, html).unwrap();
    chromium(&[&format!("--screenshot={}", shot.display())], &page);
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a screenshot"
    );
    std::fs::write(artifacts.join(format!("{name}.html")), html).unwrap();
    eprintln!("screenshot: {}", shot.display());
    measurements
}

/// `[left, top, width, height]`.
fn rect(v: &Value) -> [f64; 4] {
    let a = v.as_array().unwrap();
    [0, 1, 2, 3].map(|i| a[i].as_f64().unwrap())
}

fn visible(r: [f64; 4]) -> bool {
    r[2] >= 2.0 && r[3] >= 2.0
}

/// Overlap of two boxes by more than half a pixel each way (touching is not overlapping).
fn overlap(a: [f64; 4], b: [f64; 4]) -> bool {
    let x = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let y = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    x > 0.5 && y > 0.5
}

fn inside_horizontally(inner: [f64; 4], outer: [f64; 4]) -> bool {
    inner[0] >= outer[0] - 0.5 && inner[0] + inner[2] <= outer[0] + outer[2] + 0.5
}

/// No two text labels of the page overlap, and the page fits 1400 pixels.
fn check_text(name: &str, m: &Value) {
    assert!(
        m["width"].as_f64().unwrap() <= 1400.0,
        "{name}: the page scrolls sideways"
    );
    let texts: Vec<(String, [f64; 4])> = m["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["text"].as_str().unwrap().to_owned(), rect(&t["box"])))
        .filter(|(_, r)| r[3] > 0.0)
        .collect();
    assert!(texts.len() > 10, "{name}: {texts:?}");
    for (i, (a, ra)) in texts.iter().enumerate() {
        for (b, rb) in &texts[i + 1..] {
            assert!(
                !overlap(*ra, *rb),
                "{name}: `{a}` {ra:?} overlaps `{b}` {rb:?}"
            );
        }
    }
}

/// Every busy stretch's ends: when each span and each line outside every span starts and
/// ends, in µs.
fn items(captured: &Captured) -> Vec<(u64, u64)> {
    captured
        .spans
        .iter()
        .map(|s| (s.start.as_micros(), s.end.as_micros()))
        .chain(
            (captured.logs.iter())
                .filter(|l| l.span.is_none() && in_seed_view(l))
                .map(|l| (l.at.as_micros(), l.at.as_micros())),
        )
        .collect()
}

/// One waterfall of `m` against the replay it shows.
fn check_chart(name: &str, chart: &Value, outcome: &ReplayOutcome) {
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    let rows = chart["rows"].as_array().unwrap();
    // Every span: a visible bar inside its lane.
    for span in &captured.spans {
        let alias = aliases.span(span.span_id).to_string();
        let row = rows
            .iter()
            .find(|r| r["span"] == alias.as_str())
            .unwrap_or_else(|| panic!("{name}: no row for {alias}"));
        let (bar, lane) = (rect(&row["bar"]), rect(&row["lane"]));
        assert!(
            visible(bar),
            "{name}: {alias}'s bar is not visible: {bar:?}"
        );
        assert!(
            inside_horizontally(bar, lane),
            "{name}: {alias}'s bar {bar:?} leaves its lane {lane:?}"
        );
    }
    // Every log line the log view shows: a line in the log, and a visible marker on its span's
    // row (or on the row of lines outside every span), none covering another.
    let logs = chart["logs"].as_array().unwrap();
    let shown = captured.logs.iter().filter(|l| in_seed_view(l)).count();
    assert_eq!(logs.len(), shown, "{name}: the log panel");
    for (n, line) in captured.logs.iter().enumerate() {
        if !in_seed_view(line) {
            continue;
        }
        let shown = logs
            .iter()
            .find(|l| l["line"] == n)
            .unwrap_or_else(|| panic!("{name}: line {n} is not in the log"));
        assert!(visible(rect(&shown["box"])), "{name}: line {n}");
        let alias = line.span.map(|s| aliases.span(s.span_id).to_string());
        let row = rows
            .iter()
            .find(|r| r["span"].as_str() == alias.as_deref())
            .unwrap_or_else(|| panic!("{name}: no row for line {n}"));
        let marker = row["markers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["line"] == n)
            .unwrap_or_else(|| panic!("{name}: line {n} has no marker on {alias:?}'s row"));
        let (r, lane) = (rect(&marker["box"]), rect(&row["lane"]));
        assert!(visible(r), "{name}: line {n}'s marker {r:?}");
        assert!(
            inside_horizontally(r, lane),
            "{name}: line {n}'s marker {r:?} leaves {lane:?}"
        );
    }
    for row in rows {
        let markers = row["markers"].as_array().unwrap();
        for (i, a) in markers.iter().enumerate() {
            for b in &markers[i + 1..] {
                assert!(
                    !overlap(rect(&a["box"]), rect(&b["box"])),
                    "{name}: markers of lines {} and {} cover each other",
                    a["line"],
                    b["line"]
                );
            }
        }
    }
    // Every gap label says how long nothing ran, and the stretch is truly idle.
    let busy = items(captured);
    let gaps = chart["gaps"].as_array().unwrap();
    for gap in gaps {
        let (from, to) = (gap["from"].as_u64().unwrap(), gap["to"].as_u64().unwrap());
        let text = gap["text"].as_str().unwrap();
        let length = text
            .strip_suffix(" later")
            .and_then(|d| parse_duration(d).ok())
            .unwrap_or_else(|| panic!("{name}: gap label `{text}` states no length"));
        assert_eq!(length.as_micros() as u64, to - from, "{name}: `{text}`");
        assert!(visible(rect(&gap["box"])), "{name}: `{text}`");
        assert!(
            busy.iter().any(|(_, end)| *end == from),
            "{name}: `{text}` starts at no end"
        );
        assert!(
            busy.iter().any(|(start, _)| *start == to),
            "{name}: `{text}` ends at no start"
        );
        assert!(
            busy.iter().all(|(s, e)| *e <= from || *s >= to),
            "{name}: something runs during `{text}`"
        );
    }
    // Every idle stretch of a minute or more is a gap of its own.
    let mut sorted = busy.clone();
    sorted.sort_unstable();
    let mut reach = sorted[0].1;
    for (start, end) in &sorted[1..] {
        if *start >= reach + 60_000_000 {
            assert!(
                gaps.iter().any(|g| g["from"] == reach && g["to"] == *start),
                "{name}: nothing ran from {reach}µs to {start}µs, and no gap says so"
            );
        }
        reach = reach.max(*end);
    }
    // Ticks in time order.
    let ticks: Vec<u64> = chart["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["us"].as_u64().unwrap())
        .collect();
    assert!(ticks.windows(2).all(|w| w[0] < w[1]), "{name}: {ticks:?}");
}

fn scenario_names() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            (path.extension()? == "toml").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

#[test]
#[ignore = "needs Chromium: run by .ci/browser-test (cargo test --test browser -- --include-ignored)"]
fn every_scenarios_waterfall_reads_in_chromium() {
    let names = scenario_names();
    assert!(names.contains(&"stripe_retry".to_owned()), "{names:?}");
    for name in names {
        let outcome = common::run_green(&common::load(&name));
        let m = measured(&name, &waterfall(&outcome, Epoch::default()));
        check_text(&name, &m);
        let charts = m["charts"].as_array().unwrap();
        assert_eq!(charts.len(), 1);
        check_chart(&name, &charts[0], &outcome);
    }
}

#[test]
#[ignore = "needs Chromium: run by .ci/browser-test (cargo test --test browser -- --include-ignored)"]
fn a_diff_page_shows_both_waterfalls_readably() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("diff.html");
    let output = Command::new(env!("CARGO_BIN_EXE_trace-harness"))
        .args([
            "diff",
            "scenarios/stripe_retry.toml",
            "--bug",
            "orphan_jobs",
            "--format",
            "html",
            "--out",
        ])
        .arg(&page)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CI", "true")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let m = measured("diff-stripe_retry-orphan_jobs", &html);
    check_text("diff", &m);
    let charts = m["charts"].as_array().unwrap();
    assert_eq!(charts.len(), 2);
    let a = common::run_green(&common::load("stripe_retry"));
    let mut planted = common::load("stripe_retry");
    planted
        .service
        .bugs
        .push(trace_harness::contract::PlantedBug::OrphanJobs);
    let b = common::run(&planted, true);
    check_chart("diff A", &charts[0], &a);
    check_chart("diff B", &charts[1], &b);
    // The six orphaned jobs are marked changed on both sides.
    assert_eq!(
        html.matches(r#"<div class="row changed""#).count(),
        12,
        "{html}"
    );
}
