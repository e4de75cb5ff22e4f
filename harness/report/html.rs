//! The HTML waterfall: one self-contained page per replay (inline CSS and JS, no network) with
//! spans as bars on the virtual time axis, nested by parent, follows-from links drawn, errors
//! marked, the critical path highlighted, details on click, and the seed-style log beside it.
//!
//! Layout (rows, offsets, the critical path) is computed here, so the page is a pure function
//! of the replay; the script only shows details and reports the rendered geometry back into
//! the DOM (`data-rendered`), which the browser test reads.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::epoch::Epoch;
use super::pieces::{exported, Judged, RenderOptions};
use super::{one_line, seed_lines};
use crate::clock::{Compact, VirtualTime};
use crate::outcome::ReplayOutcome;
use crate::trace::{Aliases, Captured, SpanData, SpanId, SpanStatus};

/// Height of one row, in CSS pixels; the link overlay is drawn on the same grid.
const ROW_PX: usize = 26;
/// A bar never renders narrower than this share of the axis, so instant spans stay visible.
const MIN_BAR_PERCENT: f64 = 0.4;
/// Spans drawn per page; a replay's span budget is far below this.
const MAX_ROWS: usize = 2_000;

/// One row of the waterfall, in display order.
struct Row<'a> {
    span: &'a SpanData,
    depth: usize,
}

/// The page for one replay.
pub fn waterfall(outcome: &ReplayOutcome, epoch: Epoch) -> String {
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    let rows = rows(captured);
    let critical = critical_path(captured);
    let t0 = rows
        .iter()
        .map(|r| r.span.start)
        .min()
        .unwrap_or(VirtualTime::ZERO);
    let t1 = rows
        .iter()
        .map(|r| r.span.end)
        .max()
        .unwrap_or(VirtualTime::ZERO);
    let axis = Axis::of(rows.iter().map(|r| (r.span.start, r.span.end)));
    let percent = |t: VirtualTime| axis.position(t);

    let mut bars = String::new();
    let mut links = String::new();
    for (i, row) in rows.iter().enumerate() {
        let s = row.span;
        let left = percent(s.start);
        let width = (percent(s.end) - left)
            .max(MIN_BAR_PERCENT)
            .min(100.0 - left.min(100.0 - MIN_BAR_PERCENT));
        let mut classes = vec!["bar"];
        if matches!(s.status, SpanStatus::Error(_)) {
            classes.push("error");
        }
        if critical.contains(&s.span_id) {
            classes.push("critical");
        }
        let status = match &s.status {
            SpanStatus::Ok => "ok".to_owned(),
            SpanStatus::Error(m) => format!("error: {}", one_line(m)),
        };
        let mut details = format!(
            "{} {}\ntrace {} ({})\nspan {} ({})\nstart {} ({})\nend {} ({})\nduration {}\nstatus {status}",
            aliases.span(s.span_id),
            s.op,
            aliases.trace(s.trace_id),
            s.trace_id,
            aliases.span(s.span_id),
            s.span_id,
            s.start,
            epoch.rfc3339_at(s.start),
            s.end,
            epoch.rfc3339_at(s.end),
            Compact(s.duration()),
        );
        if let Some(p) = s.parent_id() {
            let _ = write!(details, "\nparent {}", aliases.span(p));
        }
        for link in &s.links {
            let _ = write!(details, "\nfollows from {}", aliases.span(*link));
        }
        for (k, v) in &s.fields {
            let _ = write!(details, "\n{k} = {}", one_line(&v.to_string()));
        }
        for line in captured
            .logs
            .iter()
            .filter(|l| l.span.is_some_and(|r| r.span_id == s.span_id))
        {
            let _ = write!(
                details,
                "\n{} {} {}",
                line.at,
                line.level,
                one_line(&line.message)
            );
        }
        let mark = if matches!(s.status, SpanStatus::Error(_)) {
            "✗ "
        } else {
            ""
        };
        let _ = writeln!(
            bars,
            r#"<div class="row" data-row="{i}" data-span="{alias}" data-op="{op}" data-start-us="{start}" data-end-us="{end}"><div class="label" style="padding-left:{indent}px">{mark}{alias} {op}</div><div class="lane"><div class="{classes}" style="left:{left:.4}%;width:{width:.4}%" tabindex="0" title="{title}" data-details="{details}"></div><span class="dur" style="left:{after:.4}%">{dur}</span></div></div>"#,
            alias = aliases.span(s.span_id),
            op = escape(s.op),
            start = s.start.as_micros(),
            end = s.end.as_micros(),
            indent = 6 + row.depth * 16,
            classes = classes.join(" "),
            title = escape(&format!(
                "{} {} {} {status}",
                aliases.span(s.span_id),
                s.op,
                Compact(s.duration())
            )),
            details = escape(&details),
            after = (left + width).min(92.0),
            dur = Compact(s.duration()),
        );
        for cause in &s.links {
            if let Some(j) = rows.iter().position(|r| r.span.span_id == *cause) {
                let from_x = percent(rows[j].span.end) * 10.0;
                let to_x = left * 10.0;
                let (from_y, to_y) = (j * ROW_PX + ROW_PX / 2, i * ROW_PX + ROW_PX / 2);
                let _ = writeln!(
                    links,
                    r#"<path class="link" data-from="{}" data-to="{}" d="M{from_x:.1},{from_y} C{mid:.1},{from_y} {mid:.1},{to_y} {to_x:.1},{to_y}"/>"#,
                    aliases.span(*cause),
                    aliases.span(s.span_id),
                    mid = (from_x + to_x) / 2.0,
                );
            }
        }
    }
    let height = rows.len() * ROW_PX;
    let mut ticks = String::new();
    let mut gaps = String::new();
    let mut after_gap = false;
    for piece in &axis.pieces {
        if piece.gap {
            let _ = write!(
                gaps,
                r#"<rect class="gap" x="{:.1}" y="0" width="{:.1}" height="{height}"/>"#,
                piece.left * 10.0,
                piece.width * 10.0
            );
            let _ = write!(
                ticks,
                r#"<span class="gap" style="left:{:.4}%" title="nothing ran for {}">⋯{}⋯</span>"#,
                piece.left + piece.width / 2.0,
                Compact(piece.to.since(piece.from)),
                Compact(piece.to.since(piece.from))
            );
            after_gap = true;
        } else if !after_gap {
            let _ = write!(
                ticks,
                r#"<span style="left:{:.4}%">{}</span>"#,
                piece.left, piece.from
            );
        }
    }
    let _ = write!(ticks, r#"<span class="end">{t1}</span>"#);
    let mut log = String::new();
    for (line, raw) in seed_lines(outcome).iter().zip(&captured.logs) {
        let class = if raw.level == tracing::Level::ERROR {
            "error"
        } else {
            ""
        };
        let _ = writeln!(
            log,
            r#"<div class="log {class}"><span class="at">{}</span> {}</div>"#,
            raw.at,
            escape(&line.traced())
        );
    }
    let title = format!("{} — trace waterfall", outcome.scenario);
    let mut page = String::with_capacity(16 * 1024);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{title}</h1><p>seed {seed} · virtual time {t0} – {t1} ({span}) · anchored at {anchor} · <span class="key critical">critical path</span> <span class="key error">error</span> <span class="key link">follows from</span></p></header>
<main>
<section class="waterfall" id="waterfall" data-rows="{count}">
<div class="axis">{ticks}</div>
<div class="rows">
<svg class="links" viewBox="0 0 1000 {height}" preserveAspectRatio="none" style="height:{height}px" aria-hidden="true">{gaps}{links}</svg>
{bars}</div>
<pre id="details">Click a bar for its details.</pre>
</section>
<section class="logs"><h2>Log lines</h2>
{log}</section>
</main>
<script>{SCRIPT}</script>
</body>
</html>
"#,
        title = escape(&title),
        seed = outcome.seed,
        t0 = t0,
        t1 = t1,
        span = Compact(t1.since(t0)),
        anchor = epoch.rfc3339_at(VirtualTime::ZERO),
        count = rows.len(),
    );
    page
}

/// Share of the axis an idle stretch gets, at most, and all idle stretches together.
const GAP_PERCENT: f64 = 8.0;
const ALL_GAPS_PERCENT: f64 = 40.0;

/// The time axis, with idle stretches compressed: a webhook five minutes after a 120 ms booking
/// would otherwise squeeze the booking into a pixel. Stretches where no span runs, longer than
/// [`GAP_PERCENT`] of the whole, get a fixed width and a label saying how long they were; time
/// within the busy pieces stays linear, and position is monotonic in time throughout.
struct Axis {
    pieces: Vec<Piece>,
}

struct Piece {
    from: VirtualTime,
    to: VirtualTime,
    /// Percent of the axis width.
    left: f64,
    width: f64,
    gap: bool,
}

impl Axis {
    fn of(spans: impl Iterator<Item = (VirtualTime, VirtualTime)>) -> Axis {
        let mut intervals: Vec<(u64, u64)> = spans
            .map(|(a, b)| (a.as_micros(), b.as_micros().max(a.as_micros())))
            .collect();
        intervals.sort_unstable();
        let (Some(first), Some(last_end)) = (
            intervals.first().map(|i| i.0),
            intervals.iter().map(|i| i.1).max(),
        ) else {
            return Axis { pieces: Vec::new() };
        };
        let total_us = (last_end - first).max(1);
        let min_gap_us = (total_us as f64 * GAP_PERCENT / 100.0) as u64;
        let mut busy: Vec<(u64, u64)> = Vec::new();
        for (a, b) in intervals {
            match busy.last_mut() {
                Some(last) if a <= last.1.saturating_add(min_gap_us) => last.1 = last.1.max(b),
                _ => busy.push((a, b)),
            }
        }
        let gaps = busy.len() - 1;
        let gap_width = if gaps == 0 {
            0.0
        } else {
            GAP_PERCENT.min(ALL_GAPS_PERCENT / gaps as f64)
        };
        let busy_width = 100.0 - gap_width * gaps as f64;
        let busy_us: u64 = busy.iter().map(|(a, b)| b - a).sum();
        let mut pieces = Vec::new();
        let mut left = 0.0;
        for (i, (a, b)) in busy.iter().enumerate() {
            if i > 0 {
                let from = busy[i - 1].1;
                pieces.push(Piece {
                    from: VirtualTime::from_micros(from),
                    to: VirtualTime::from_micros(*a),
                    left,
                    width: gap_width,
                    gap: true,
                });
                left += gap_width;
            }
            let width = if busy_us == 0 {
                busy_width / busy.len() as f64
            } else {
                busy_width * (b - a) as f64 / busy_us as f64
            };
            pieces.push(Piece {
                from: VirtualTime::from_micros(*a),
                to: VirtualTime::from_micros(*b),
                left,
                width,
                gap: false,
            });
            left += width;
        }
        Axis { pieces }
    }

    /// Where `t` lies on the axis, in percent.
    fn position(&self, t: VirtualTime) -> f64 {
        let Some(piece) = self
            .pieces
            .iter()
            .find(|p| t <= p.to)
            .or(self.pieces.last())
        else {
            return 0.0;
        };
        let span_us = piece.to.as_micros().saturating_sub(piece.from.as_micros());
        if span_us == 0 {
            return piece.left;
        }
        let into_us = t
            .as_micros()
            .saturating_sub(piece.from.as_micros())
            .min(span_us);
        piece.left + piece.width * into_us as f64 / span_us as f64
    }
}

/// Spans in tree order: each trace's roots by creation, each span followed by its children.
fn rows(captured: &Captured) -> Vec<Row<'_>> {
    let mut rows = Vec::new();
    let mut seen = HashSet::new();
    for trace in captured.trace_ids() {
        let roots = captured
            .spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .filter(|s| s.parent_id().and_then(|p| captured.span(p)).is_none());
        for root in roots {
            push_subtree(captured, root, 0, &mut rows, &mut seen);
        }
    }
    rows
}

fn push_subtree<'a>(
    captured: &'a Captured,
    span: &'a SpanData,
    depth: usize,
    rows: &mut Vec<Row<'a>>,
    seen: &mut HashSet<SpanId>,
) {
    // `seen` guards against a parent cycle in a corrupt capture; the limit against a huge one.
    if rows.len() >= MAX_ROWS || !seen.insert(span.span_id) {
        return;
    }
    rows.push(Row { span, depth });
    for child in captured.children(span.span_id) {
        push_subtree(captured, child, depth + 1, rows, seen);
    }
}

/// Per trace, the chain from the root to the span that finishes last: the work the whole flow
/// waited on, including async work that outlives the request that scheduled it.
fn critical_path(captured: &Captured) -> HashSet<SpanId> {
    let mut path = HashSet::new();
    for trace in captured.trace_ids() {
        let Some(last) = captured
            .spans
            .iter()
            .filter(|s| s.trace_id == trace)
            .max_by_key(|s| (s.end, std::cmp::Reverse(s.seq)))
        else {
            continue;
        };
        let mut at = Some(last);
        while let Some(span) = at {
            if !path.insert(span.span_id) {
                break;
            }
            at = span.parent_id().and_then(|p| captured.span(p));
        }
    }
    path
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#1d2330;background:#fff}
header{padding:8px 16px;border-bottom:1px solid #dde}
h1{font-size:16px;margin:0}h2{font-size:14px;margin:0 0 6px}
header p{margin:4px 0 0;color:#556}
main{display:flex;gap:16px;padding:12px 16px;align-items:flex-start}
.waterfall{flex:3;min-width:0}.logs{flex:2;min-width:0;font:12px/1.5 ui-monospace,monospace}
.axis{position:relative;height:18px;margin-left:260px;color:#667;border-bottom:1px solid #ccd;font-size:11px}
.axis span{position:absolute;top:0;white-space:nowrap}.axis span.end{right:0}.axis span.gap{transform:translateX(-50%);color:#99a}
rect.gap{fill:#f3f3f7}
.rows{position:relative}
.row{display:flex;height:26px;align-items:center;border-bottom:1px solid #f0f0f4}
.label{width:260px;flex:none;box-sizing:border-box;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-family:ui-monospace,monospace;font-size:12px}
.lane{position:relative;flex:1;height:100%}
.bar{position:absolute;top:6px;height:14px;background:#6b8fd6;border-radius:2px;cursor:pointer}
.bar.critical{background:#e0a030;box-shadow:0 0 0 2px #b86e00}
.bar.error{background:#d64545}.bar.error.critical{background:#d64545;box-shadow:0 0 0 2px #b86e00}
.bar:focus{outline:2px solid #123}
.dur{position:absolute;top:5px;margin-left:4px;color:#556;font-size:11px;white-space:nowrap}
svg.links{position:absolute;left:260px;top:0;width:calc(100% - 260px);pointer-events:none;overflow:visible}
path.link{fill:none;stroke:#7a4fbf;stroke-width:1.5;stroke-dasharray:4 3;vector-effect:non-scaling-stroke}
#details{background:#f6f7fb;border:1px solid #dde;padding:8px;white-space:pre-wrap;min-height:3em}
.log{white-space:pre-wrap;border-bottom:1px solid #f0f0f4}.log.error{color:#b00}.log .at{color:#889}
.key{padding:0 6px;border-radius:2px}.key.critical{background:#e0a030}.key.error{background:#d64545;color:#fff}.key.link{border:1px dashed #7a4fbf}
"#;

const SCRIPT: &str = r#"
(function () {
  var details = document.getElementById('details');
  var bars = Array.prototype.slice.call(document.querySelectorAll('.bar'));
  bars.forEach(function (bar) {
    var show = function () { details.textContent = bar.getAttribute('data-details'); };
    bar.addEventListener('click', show);
    bar.addEventListener('focus', show);
  });
  // Report the geometry the browser rendered, for tests that load the page headless.
  var rendered = bars.map(function (bar) {
    var r = bar.getBoundingClientRect();
    var row = bar.closest('.row');
    return [row.getAttribute('data-span'), Math.round(r.top), Math.round(r.left), Math.round(r.width)].join(':');
  });
  document.getElementById('waterfall').setAttribute('data-rendered', rendered.join(' '));
})();
"#;

/// Every replay's page, each in `<scenario>.html` (or the one page on standard output).
pub fn render(judged: &[Judged<'_>], options: RenderOptions) -> Vec<super::Piece> {
    exported(judged, options, "html", waterfall)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(us: u64) -> VirtualTime {
        VirtualTime::from_micros(us)
    }

    #[test]
    fn idle_stretches_are_compressed_and_position_stays_monotonic() {
        // 120 ms of work, five idle minutes, 80 ms of work.
        let axis = Axis::of(
            [(0, 120_000), (120_000, 120_000), (300_000_000, 300_080_000)]
                .into_iter()
                .map(|(a, b)| (t(a), t(b))),
        );
        let gaps: Vec<&Piece> = axis.pieces.iter().filter(|p| p.gap).collect();
        assert_eq!(gaps.len(), 1);
        assert_eq!(gaps[0].width, GAP_PERCENT);
        // The busy time shares the rest linearly: 120 ms against 80 ms.
        assert!((axis.position(t(120_000)) - 92.0 * 0.6).abs() < 1e-9);
        assert_eq!(axis.position(t(300_080_000)), 100.0);
        let samples: Vec<f64> = (0..=300_080u64)
            .step_by(997)
            .map(|ms| axis.position(t(ms * 1_000)))
            .collect();
        assert!(samples.windows(2).all(|w| w[0] <= w[1]), "{samples:?}");
        // Without idle stretches the axis is plain linear time.
        let linear = Axis::of([(t(0), t(1_000)), (t(500), t(2_000))].into_iter());
        assert_eq!(linear.pieces.len(), 1);
        assert_eq!(linear.position(t(500)), 25.0);
    }
}
