//! The HTML waterfall: one self-contained page per replay (inline CSS and JS, no network) with
//! spans as bars on a time axis made for virtual time: cut into busy segments and gaps, each
//! segment as wide as its own duration asks (never narrower than its labels need), each gap a
//! labelled break ("27m59.65s later"), ticks per segment. Follows-from links are drawn from
//! cause to effect across breaks, span events (log lines) are markers on their bars (warnings
//! amber, errors red; the line on hover and on click), errors and the critical path marked,
//! the seed-style log below.
//!
//! Layout (segments, ticks, rows, marker places, the critical path) is computed here, so the
//! page is a pure function of the replay and its picture needs no JavaScript; the script only
//! shows details. Text is placed for a lane of at least [`Frame::lane_px`] pixels (the page
//! keeps that minimum and scrolls sideways below it), from a monospace font's advance, so
//! that no two labels overlap; the browser test measures that in Chromium.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::epoch::Epoch;
use super::pieces::{exported, Judged, RenderOptions};
use super::{in_seed_view, one_line, seed_line};
use crate::clock::{Compact, VirtualTime};
use crate::outcome::ReplayOutcome;
use crate::trace::{Aliases, Captured, SpanData, SpanId, SpanStatus};

/// Height of one row, in CSS pixels; the link overlay is drawn on the same grid.
const ROW_PX: usize = 26;
/// Spans drawn per page; a replay's span budget is far below this.
const MAX_ROWS: usize = 2_000;
/// Log lines drawn as markers per page.
const MAX_MARKERS: usize = 10_000;
/// The advance of one character of the axis and duration labels (11px monospace advances
/// 6.6px in DejaVu Sans Mono and Liberation Mono), with a margin.
const CHAR_PX: f64 = 7.0;
/// Space kept between two labels on one line.
const LABEL_GAP_PX: f64 = 12.0;
/// The narrowest a segment is drawn, whatever its first tick label.
const MIN_SEGMENT_PX: f64 = 40.0;
/// A marker's width; markers closer than this on one row are moved apart.
const MARKER_PX: f64 = 5.0;
/// An idle stretch becomes a gap when it is longer than this many times the busy time on
/// either side of it: a webhook five minutes after a 120 ms booking, not the 20 ms between
/// two calls.
const CUT_RATIO: f64 = 1.0;

/// How wide the picture is drawn: the lane (the time axis) at its narrowest, in CSS pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub(crate) lane_px: f64,
    pub(crate) label_px: f64,
    /// The width a gap is drawn with.
    pub(crate) gap_px: f64,
}

impl Frame {
    /// A page of its own, read at 1400 pixels wide or more.
    pub(crate) const PAGE: Frame = Frame {
        lane_px: 1000.0,
        label_px: 300.0,
        gap_px: 56.0,
    };

    /// One of two waterfalls side by side on such a page.
    pub(crate) const HALF: Frame = Frame {
        lane_px: 420.0,
        label_px: 240.0,
        gap_px: 32.0,
    };
}

/// How wide a time label is drawn.
fn label_px(t: VirtualTime) -> f64 {
    t.to_string().chars().count() as f64 * CHAR_PX
}

/// What a diff says of a span, for a waterfall beside another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Only this side has it.
    Alone,
    /// Both have it, and something of it differs.
    Changed,
}

/// One row of the waterfall, in display order.
struct Row<'a> {
    span: &'a SpanData,
    depth: usize,
}

/// The page for one replay.
pub fn waterfall(outcome: &ReplayOutcome, epoch: Epoch) -> String {
    let title = format!("{} — trace waterfall", outcome.scenario);
    let body = chart(outcome, epoch, Frame::PAGE, "w", &[]);
    page(&title, &body)
}

/// A whole page around `body`: its style, the details script. Its Content-Security-Policy
/// allows nothing to load (`default-src 'none'`): the page is one self-contained file.
/// `'unsafe-inline'` is a CSP keyword, not Rust's `unsafe`: every bar's place is a computed
/// `style` attribute, which neither a hash nor a nonce can allow (they cover elements, not
/// attributes), and the browser test appends its measuring script inline.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
{body}<script>{SCRIPT}</script>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// One replay's waterfall: header, axis, rows, details and log; element ids prefixed with
/// `id` (two can share a page); spans in `marks` (by index into `captured.spans`) marked.
pub(crate) fn chart(
    outcome: &ReplayOutcome,
    epoch: Epoch,
    frame: Frame,
    id: &str,
    marks: &[(usize, Mark)],
) -> String {
    let captured = &outcome.captured;
    let aliases = Aliases::of(captured);
    let rows = rows(captured);
    let critical = critical_path(captured);
    let outside: Vec<usize> = (captured.logs.iter().enumerate())
        .filter(|(_, l)| l.span.is_none() && in_seed_view(l))
        .map(|(i, _)| i)
        .collect();
    let axis = Axis::of(
        rows.iter().map(|r| (r.span.start, r.span.end)).chain(
            outside
                .iter()
                .map(|i| (captured.logs[*i].at, captured.logs[*i].at)),
        ),
        frame,
    );
    let t0 = axis.segments.first().map_or(VirtualTime::ZERO, |s| s.from);
    let t1 = axis.segments.last().map_or(VirtualTime::ZERO, |s| s.to);
    // The lines the seed-style log view shows, each as it shows it (indexed as `captured.logs`).
    let lines: Vec<Option<String>> = (captured.logs.iter())
        .map(|l| in_seed_view(l).then(|| seed_line(&aliases, l).traced()))
        .collect();

    let mut bars = String::new();
    let mut links = String::new();
    let mut markers_drawn = 0;
    for (i, row) in rows.iter().enumerate() {
        let s = row.span;
        let ix = captured
            .spans
            .iter()
            .position(|x| x.span_id == s.span_id)
            .unwrap_or_default();
        let left = axis.percent(s.start);
        let width = (axis.percent(s.end) - left).max(0.0);
        let mut classes = vec!["bar"];
        if matches!(s.status, SpanStatus::Error(_)) {
            classes.push("error");
        }
        if critical.contains(&s.span_id) {
            classes.push("critical");
        }
        let mut row_classes = vec!["row"];
        match marks.iter().find(|(m, _)| *m == ix).map(|(_, mark)| mark) {
            Some(Mark::Alone) => row_classes.push("alone"),
            Some(Mark::Changed) => row_classes.push("changed"),
            None => {}
        }
        let status = match &s.status {
            SpanStatus::Ok => "ok".to_owned(),
            SpanStatus::Error(m) => format!("error: {}", one_line(m)),
        };
        let details = span_details(captured, &aliases, s, &status, epoch);
        let mark = if matches!(s.status, SpanStatus::Error(_)) {
            "✗ "
        } else {
            ""
        };
        let dur = Compact(s.duration()).to_string();
        let _ = write!(
            bars,
            r#"<div class="{row_classes}" data-row="{i}" data-span="{alias}" data-op="{op}" data-start-us="{start}" data-end-us="{end}"><div class="label txt" style="padding-left:{indent}px" title="{alias} {op}">{mark}{alias} {op}</div><div class="lane"><div class="{classes}" style="left:min({left:.4}%,calc(100% - 3px));width:{width:.4}%" tabindex="0" title="{title}" data-details="{details}"></div>{dur_label}"#,
            row_classes = row_classes.join(" "),
            alias = aliases.span(s.span_id),
            op = escape(s.op),
            start = s.start.as_micros(),
            end = s.end.as_micros(),
            indent = 6 + row.depth * 14,
            classes = classes.join(" "),
            title = escape(&format!(
                "{} {} {dur} {status}",
                aliases.span(s.span_id),
                s.op
            )),
            details = escape(&details),
            dur_label = duration_label(&dur, left, width, frame),
        );
        let in_span: Vec<usize> = (captured.logs.iter().enumerate())
            .filter(|(_, l)| l.span.is_some_and(|r| r.span_id == s.span_id))
            .map(|(n, _)| n)
            .collect();
        markers_drawn += markers(
            &mut bars,
            captured,
            &lines,
            &in_span,
            &axis,
            frame,
            markers_drawn,
        );
        bars.push_str("</div></div>\n");
        for cause in &s.links {
            if let Some(j) = rows.iter().position(|r| r.span.span_id == *cause) {
                let from_x = axis.percent(rows[j].span.end) * 10.0;
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
    let mut row_count = rows.len();
    if !outside.is_empty() {
        let _ = write!(
            bars,
            r#"<div class="row outside" data-row="{row_count}"><div class="label txt" style="padding-left:6px">(outside every span)</div><div class="lane">"#
        );
        markers(
            &mut bars,
            captured,
            &lines,
            &outside,
            &axis,
            frame,
            markers_drawn,
        );
        bars.push_str("</div></div>\n");
        row_count += 1;
    }
    let height = row_count * ROW_PX;
    let (ticks, gap_labels, bands) = axis.html(height);
    let mut log = String::new();
    for (n, (line, raw)) in lines.iter().zip(&captured.logs).enumerate() {
        let Some(line) = line else { continue };
        let class = level_class(raw.level);
        let _ = writeln!(
            log,
            r#"<div class="log {class}" id="{id}-line-{n}" data-line="{n}"><span class="at">{}</span> <span class="lvl">{}</span> {}</div>"#,
            raw.at,
            raw.level,
            escape(line)
        );
    }
    let mut out = String::with_capacity(16 * 1024 + rows.len() * 512);
    let _ = write!(
        out,
        r#"<header class="txt"><h1>{title}</h1><p>seed {seed} · virtual time {t0} – {t1} ({span}) · anchored at {anchor} · <span class="key k-critical">critical path</span> <span class="key k-error">error</span> <span class="key k-link">follows from</span> <span class="key k-line">▮ log line</span> <span class="key k-warn">▮ warning</span> <span class="key k-err">▮ error line</span> <span class="key k-gap">gap: nothing ran</span></p></header>
<section class="waterfall" id="{id}" data-rows="{count}" style="min-width:{min_px}px">
<div class="axis" style="margin-left:{label_px}px"><div class="gaps">{gap_labels}</div><div class="ticks">{ticks}</div></div>
<div class="rows" style="--label:{label_px}px">
<svg class="links" viewBox="0 0 1000 {height}" preserveAspectRatio="none" style="height:{height}px" aria-hidden="true">{links}</svg>
<div class="bands" style="height:{height}px">{bands}</div>
{bars}</div>
<pre class="details" id="{id}-details">Click a bar or a log marker for its details.</pre>
<section class="logs"><h2>Log lines</h2>
{log}</section>
</section>
"#,
        title = escape(&format!("{} — trace waterfall", outcome.scenario)),
        seed = outcome.seed,
        span = Compact(t1.since(t0)),
        anchor = epoch.rfc3339_at(VirtualTime::ZERO),
        count = rows.len(),
        min_px = (frame.label_px + frame.lane_px) as u64,
        label_px = frame.label_px as u64,
    );
    out
}

/// The details a click shows: ids, times, status, parent, links, fields and lines.
fn span_details(
    captured: &Captured,
    aliases: &Aliases,
    s: &SpanData,
    status: &str,
    epoch: Epoch,
) -> String {
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
    details
}

/// A span's duration beside its bar: right of it where it fits in the lane, else left of
/// it, else inside it.
fn duration_label(text: &str, left: f64, width: f64, frame: Frame) -> String {
    let need_pct = (text.chars().count() as f64 * CHAR_PX + 8.0) / frame.lane_px * 100.0;
    let right = left + width;
    if right + need_pct <= 100.0 {
        format!(r#"<span class="dur txt" style="left:{right:.4}%">{text}</span>"#)
    } else if left >= need_pct {
        format!(
            r#"<span class="dur txt before" style="right:{:.4}%">{text}</span>"#,
            100.0 - left
        )
    } else {
        format!(r#"<span class="dur txt inside" style="left:{left:.4}%">{text}</span>"#)
    }
}

fn level_class(level: tracing::Level) -> &'static str {
    if level == tracing::Level::ERROR {
        "error"
    } else if level == tracing::Level::WARN {
        "warn"
    } else {
        "info"
    }
}

/// A marker per line of `lines` (indices into `captured.logs`) the log view shows, on one row, each at its time
/// and at least a marker's width from the previous one; returns how many were drawn.
fn markers(
    out: &mut String,
    captured: &Captured,
    seed: &[Option<String>],
    lines: &[usize],
    axis: &Axis,
    frame: Frame,
    drawn: usize,
) -> usize {
    let mut last_px = f64::NEG_INFINITY;
    let mut count = 0;
    for &n in lines {
        if drawn + count >= MAX_MARKERS {
            break;
        }
        let Some(Some(text)) = seed.get(n) else {
            continue;
        };
        let line = &captured.logs[n];
        let pct = axis.percent(line.at);
        let at_px = pct / 100.0 * frame.lane_px;
        let shift_px = (last_px + MARKER_PX + 1.0 - at_px).max(0.0);
        last_px = at_px + shift_px;
        let _ = write!(
            out,
            r#"<span class="ev {class}" style="left:clamp(0px,calc({pct:.4}% + {left_px:.1}px),calc(100% - {MARKER_PX}px))" tabindex="0" data-line="{n}" title="{title}"></span>"#,
            // Centred on its instant, moved right past the previous one, inside the lane.
            left_px = shift_px - MARKER_PX / 2.0,
            class = level_class(line.level),
            title = escape(&format!("{} {} {}", line.at, line.level, text)),
        );
        count += 1;
    }
    count
}

/// One stretch of the axis: busy time drawn linearly, or (between two of them) a gap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    from: VirtualTime,
    to: VirtualTime,
    /// Percent of the lane.
    left: f64,
    width: f64,
}

/// The time axis for virtual time: where anything runs (a span, or a line written outside
/// every span), busy segments drawn linearly, each wide enough for its first tick label and
/// otherwise as wide as its share of the busy time; idle stretches longer than
/// [`CUT_RATIO`] times the busy time on either side become gaps of [`Frame::gap_px`], at most as many
/// as fit (the shortest are kept inside a segment). Position is monotonic in time.
#[derive(Debug)]
struct Axis {
    segments: Vec<Segment>,
    frame: Frame,
}

impl Axis {
    fn of(items: impl Iterator<Item = (VirtualTime, VirtualTime)>, frame: Frame) -> Axis {
        let mut intervals: Vec<(u64, u64)> = items
            .map(|(a, b)| (a.as_micros(), b.as_micros().max(a.as_micros())))
            .collect();
        intervals.sort_unstable();
        let mut busy: Vec<(u64, u64)> = Vec::new();
        for (a, b) in intervals {
            match busy.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => busy.push((a, b)),
            }
        }
        // Which idle stretches are cut: long against the busy time beside them.
        let mut cut: Vec<bool> = busy
            .windows(2)
            .map(|w| {
                let idle = (w[1].0 - w[0].1) as f64;
                let beside = (w[0].1 - w[0].0).max(w[1].1 - w[1].0) as f64;
                idle > CUT_RATIO * beside
            })
            .collect();
        // Every segment has room for its first tick label, the longest start among them.
        let min_px = busy
            .iter()
            .map(|(a, _)| label_px(VirtualTime::from_micros(*a)) + LABEL_GAP_PX)
            .fold(MIN_SEGMENT_PX, f64::max);
        let gap_px = frame.gap_px;
        let max_gaps = ((frame.lane_px + gap_px) / (min_px + gap_px)).floor() as usize;
        let max_gaps = max_gaps.saturating_sub(1);
        let mut by_length: Vec<usize> = (0..cut.len()).filter(|i| cut[*i]).collect();
        by_length.sort_by_key(|i| (busy[i + 1].0 - busy[*i].1, std::cmp::Reverse(*i)));
        let excess = by_length.len().saturating_sub(max_gaps);
        for i in by_length.into_iter().take(excess) {
            cut[i] = false;
        }
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for (i, (a, b)) in busy.iter().enumerate() {
            match spans.last_mut() {
                Some(last) if i > 0 && !cut[i - 1] => last.1 = *b,
                _ => spans.push((*a, *b)),
            }
        }
        // Widths in pixels: proportional, but none below the minimum (water-filling).
        let gaps = spans.len().saturating_sub(1) as f64;
        let available = (frame.lane_px - gaps * gap_px).max(min_px);
        let lengths: Vec<f64> = spans.iter().map(|(a, b)| (b - a) as f64).collect();
        let mut pinned = vec![false; spans.len()];
        let mut px = vec![0.0; spans.len()];
        loop {
            let free = available - min_px * pinned.iter().filter(|p| **p).count() as f64;
            let free_len: f64 = (0..spans.len())
                .filter(|i| !pinned[*i])
                .map(|i| lengths[i])
                .sum();
            let unpinned = pinned.iter().filter(|p| !**p).count() as f64;
            let mut changed = false;
            for i in 0..spans.len() {
                if pinned[i] {
                    px[i] = min_px;
                    continue;
                }
                px[i] = if free_len > 0.0 {
                    free * lengths[i] / free_len
                } else {
                    free / unpinned
                };
                if px[i] < min_px {
                    pinned[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let total: f64 = px.iter().sum::<f64>() + gaps * gap_px;
        let scale = 100.0 / total.max(1.0);
        let mut left = 0.0;
        let mut segments = Vec::with_capacity(spans.len());
        for (i, (a, b)) in spans.iter().enumerate() {
            if i > 0 {
                left += gap_px * scale;
            }
            let width = px[i] * scale;
            segments.push(Segment {
                from: VirtualTime::from_micros(*a),
                to: VirtualTime::from_micros(*b),
                left,
                width,
            });
            left += width;
        }
        Axis { segments, frame }
    }

    /// Where `t` lies on the lane, in percent.
    fn percent(&self, t: VirtualTime) -> f64 {
        let Some(segment) = self
            .segments
            .iter()
            .find(|s| t <= s.to)
            .or(self.segments.last())
        else {
            return 0.0;
        };
        if t <= segment.from {
            return segment.left;
        }
        let span_us = segment.to.as_micros() - segment.from.as_micros();
        let into_us = (t.as_micros() - segment.from.as_micros()).min(span_us);
        segment.left + segment.width * into_us as f64 / span_us as f64
    }

    /// The gaps between segments: (from, to, left %, width %).
    fn gaps(&self) -> Vec<(VirtualTime, VirtualTime, f64, f64)> {
        self.segments
            .windows(2)
            .map(|w| {
                let left = w[0].left + w[0].width;
                (w[0].to, w[1].from, left, w[1].left - left)
            })
            .collect()
    }

    /// Tick labels per segment (its start, then round steps that fit), the gap labels, and
    /// the gap bands drawn across the rows.
    fn html(&self, height: usize) -> (String, String, String) {
        let mut ticks = String::new();
        for s in &self.segments {
            for (t, left) in self.ticks(s) {
                let _ = write!(
                    ticks,
                    r#"<span class="tick txt" style="left:{left:.4}%" data-us="{}">{t}</span>"#,
                    t.as_micros()
                );
            }
        }
        let mut labels = String::new();
        let mut bands = String::new();
        for (k, (from, to, left, width)) in self.gaps().into_iter().enumerate() {
            let length = Compact(to.since(from));
            // On two lines by turns: a label wider than its gap clears its neighbours.
            let _ = write!(
                labels,
                r#"<span class="gap-label txt line{}" style="left:{:.4}%" data-from-us="{}" data-to-us="{}" title="nothing ran from {from} to {to}">{length} later</span>"#,
                k % 2,
                left + width / 2.0,
                from.as_micros(),
                to.as_micros(),
            );
            let _ = write!(
                bands,
                r#"<div class="gap" style="left:{left:.4}%;width:{width:.4}%;height:{height}px" title="{length} later: nothing ran"></div>"#,
            );
        }
        (ticks, labels, bands)
    }

    /// A segment's ticks: its start, then multiples of a round step from it while each label
    /// keeps clear of the previous one and ends inside the segment.
    fn ticks(&self, s: &Segment) -> Vec<(VirtualTime, f64)> {
        let px_per_pct = self.frame.lane_px / 100.0;
        let mut out = vec![(s.from, s.left)];
        let span_us = s.to.as_micros() - s.from.as_micros();
        if span_us == 0 {
            return out;
        }
        let width_px = s.width * px_per_pct;
        let widest = label_px(s.to).max(label_px(s.from)) + LABEL_GAP_PX;
        let fits = (width_px / widest).floor() as u64;
        if fits < 2 {
            return out;
        }
        // The smallest round step (1, 2, 5 × 10^k µs) giving at most `fits` labels.
        let mut step = 1u64;
        'search: for exponent in 0..20u32 {
            for m in [1u64, 2, 5] {
                step = m * 10u64.pow(exponent);
                if span_us / step < fits {
                    break 'search;
                }
            }
        }
        let mut last_end_px = s.left * px_per_pct + label_px(s.from) + LABEL_GAP_PX;
        let mut at = step;
        while at <= span_us {
            let t = VirtualTime::from_micros(s.from.as_micros() + at);
            let x_px = self.percent(t) * px_per_pct;
            let end_px = x_px + label_px(t);
            if x_px >= last_end_px && end_px <= (s.left + s.width) * px_per_pct {
                out.push((t, x_px / px_per_pct));
                last_end_px = end_px + LABEL_GAP_PX;
            }
            at += step;
        }
        out
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

pub(crate) fn escape(text: &str) -> String {
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
body{font:13px/1.4 system-ui,sans-serif;margin:0;padding:0 16px 16px;color:#1d2330;background:#fff}
header{padding:8px 0;border-bottom:1px solid #dde}
h1{font-size:16px;margin:0}h2{font-size:14px;margin:12px 0 6px}
header p{margin:4px 0 0;color:#556}
.waterfall{position:relative;margin-top:8px}
.axis{position:relative;height:54px;border-bottom:1px solid #ccd;font:11px/16px ui-monospace,'DejaVu Sans Mono','Liberation Mono',monospace;color:#556}
.axis .gaps{position:relative;height:36px}.axis .ticks{position:relative;height:18px}
.tick{position:absolute;top:0;white-space:nowrap;border-left:1px solid #bbc;padding-left:2px}
.gap-label.line1{top:18px}.gap-label{position:absolute;top:0;line-height:16px;white-space:nowrap;transform:translateX(-50%);color:#445;font-weight:600}
.rows{position:relative}
.bands{position:absolute;left:var(--label);right:0;top:0;pointer-events:none}
.gap{position:absolute;top:0;background:repeating-linear-gradient(135deg,#e4e6f0 0 3px,#f8f8fb 3px 9px);border-left:2px solid #aab;border-right:2px solid #aab;box-sizing:border-box}
.row{display:flex;height:26px;box-sizing:border-box;align-items:center;border-bottom:1px solid #f0f0f4}
.row.alone .label{background:#e3f4e3}.row.changed .label{background:#fdf1d6}
.label{width:var(--label);flex:none;box-sizing:border-box;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-family:ui-monospace,'DejaVu Sans Mono','Liberation Mono',monospace;font-size:12px}
.lane{position:relative;flex:1;height:100%}
.bar{position:absolute;top:6px;height:14px;min-width:3px;background:#6b8fd6;border-radius:2px;cursor:pointer}
.bar.critical{background:#e0a030;box-shadow:0 0 0 2px #b86e00}
.bar.error{background:#d64545}.bar.error.critical{background:#d64545;box-shadow:0 0 0 2px #b86e00}
.bar:focus,.ev:focus{outline:2px solid #123}
.ev{position:absolute;top:3px;width:5px;height:20px;background:#2b3a67;border:1px solid #fff;outline:1px solid #1d2330;box-sizing:border-box;cursor:pointer;z-index:2}
.ev.warn{background:#ffc400}.ev.error{background:#e00000}
.dur{position:absolute;top:5px;margin-left:6px;color:#445;font:11px/16px ui-monospace,'DejaVu Sans Mono','Liberation Mono',monospace;white-space:nowrap}
.dur.before{margin:0 4px 0 0}.dur.inside{color:#fff;margin-left:4px}
svg.links{position:absolute;left:var(--label);top:0;width:calc(100% - var(--label));pointer-events:none;overflow:visible;z-index:1}
path.link{fill:none;stroke:#7a4fbf;stroke-width:1.5;stroke-dasharray:4 3;vector-effect:non-scaling-stroke}
.details{background:#f6f7fb;border:1px solid #dde;padding:8px;white-space:pre-wrap;min-height:3em;margin:10px 0 0}
.logs{font:12px/1.5 ui-monospace,monospace}
.log{white-space:pre-wrap;border-bottom:1px solid #f0f0f4}.log.error{color:#b00}.log.warn{color:#8a5a00}.log .at{color:#889}.log .lvl{color:#889}
.log.shown{background:#fff3b0}
.key{padding:0 6px;border-radius:2px;white-space:nowrap}.k-critical{background:#e0a030}.k-error{background:#d64545;color:#fff}.k-link{border:1px dashed #7a4fbf}
.k-line{color:#2b3a67}.k-warn{color:#c79400}.k-err{color:#e00000}.k-gap{background:repeating-linear-gradient(135deg,#e4e6f0 0 3px,#f8f8fb 3px 9px)}
.diff{display:flex;gap:16px;align-items:flex-start}.diff>div{flex:1;min-width:0;overflow-x:auto}
.pair h2{font-size:15px;margin:16px 0 4px}.summary{font:12px/1.5 ui-monospace,monospace;background:#f6f7fb;border:1px solid #dde;padding:8px;margin:0}
.k-alone{background:#e3f4e3}.k-changed{background:#fdf1d6}
"#;

const SCRIPT: &str = r#"
(function () {
  document.querySelectorAll('.waterfall').forEach(function (chart) {
    var details = document.getElementById(chart.id + '-details');
    var show = function (text, line) {
      details.textContent = text;
      chart.querySelectorAll('.log.shown').forEach(function (l) { l.classList.remove('shown'); });
      if (line !== null) {
        var shown = document.getElementById(chart.id + '-line-' + line);
        if (shown) { shown.classList.add('shown'); }
      }
    };
    chart.querySelectorAll('.bar').forEach(function (bar) {
      var f = function () { show(bar.getAttribute('data-details'), null); };
      bar.addEventListener('click', f);
      bar.addEventListener('focus', f);
    });
    chart.querySelectorAll('.ev').forEach(function (ev) {
      var f = function (e) { e.stopPropagation(); show(ev.getAttribute('title'), ev.getAttribute('data-line')); };
      ev.addEventListener('click', f);
      ev.addEventListener('focus', f);
    });
  });
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

    fn axis(items: &[(u64, u64)]) -> Axis {
        Axis::of(items.iter().map(|(a, b)| (t(*a), t(*b))), Frame::PAGE)
    }

    #[test]
    fn idle_stretches_become_labelled_gaps_and_position_stays_monotonic() {
        // 120 ms of work, five idle minutes, 80 ms of work.
        let axis = axis(&[(0, 120_000), (120_000, 120_000), (300_000_000, 300_080_000)]);
        assert_eq!(axis.segments.len(), 2);
        let gaps = axis.gaps();
        assert_eq!(gaps.len(), 1);
        assert_eq!((gaps[0].0, gaps[0].1), (t(120_000), t(300_000_000)));
        assert!(
            (gaps[0].3 - Frame::PAGE.gap_px / 10.0).abs() < 1e-9,
            "{gaps:?}"
        );
        // The busy time shares the rest: 120 ms against 80 ms.
        let (a, b) = (axis.segments[0].width, axis.segments[1].width);
        assert!((a / b - 1.5).abs() < 1e-9, "{a} {b}");
        assert!((axis.percent(t(300_080_000)) - 100.0).abs() < 1e-9);
        let samples: Vec<f64> = (0..=300_080u64)
            .step_by(997)
            .map(|ms| axis.percent(t(ms * 1_000)))
            .collect();
        assert!(samples.windows(2).all(|w| w[0] <= w[1]), "{samples:?}");
    }

    #[test]
    fn short_pauses_stay_inside_a_segment_and_instants_get_a_readable_width() {
        // Two calls 20 ms apart inside 300 ms of work: one segment, linear.
        let linear = axis(&[(0, 100_000), (120_000, 300_000)]);
        assert_eq!(linear.segments.len(), 1);
        assert!((linear.percent(t(150_000)) - 50.0).abs() < 1e-9);
        // A 0 s booking, three hours of nothing, 1m50s of retries.
        let retries = axis(&[(0, 0), (10_800_000_000, 10_910_120_000)]);
        assert_eq!(retries.segments.len(), 2);
        let px = retries.segments[0].width * Frame::PAGE.lane_px / 100.0;
        // As wide as the widest first tick label ("+3h") asks, or the least width; no wider.
        let least = (label_px(t(10_800_000_000)) + LABEL_GAP_PX).max(MIN_SEGMENT_PX);
        assert!((px - least).abs() < 1e-6, "{px}");
    }

    #[test]
    fn no_more_gaps_than_fit_and_the_shortest_are_kept_inside() {
        // Ten bursts an hour apart, and one only a minute after its neighbour.
        let mut items: Vec<(u64, u64)> = (0..10)
            .map(|h| (h * 3_600_000_000, h * 3_600_000_000 + 1_000))
            .collect();
        items.push((3_600_000_000 + 60_000_000, 3_600_000_000 + 60_001_000));
        let axis = axis(&items);
        let gap = Frame::PAGE.gap_px;
        let min_px = items
            .iter()
            .map(|(a, _)| label_px(t(*a)) + LABEL_GAP_PX)
            .fold(MIN_SEGMENT_PX, f64::max);
        let fit = ((Frame::PAGE.lane_px + gap) / (min_px + gap)).floor() as usize;
        assert_eq!(axis.segments.len(), fit);
        assert!(fit < 11, "not every pause fits");
        assert!(axis
            .segments
            .iter()
            .all(|s| s.width * 10.0 >= min_px - 1e-6));
        let end = axis.segments.last().map(|s| s.left + s.width).unwrap();
        assert!((end - 100.0).abs() < 1e-9, "{end}");
        // The minute-long pause went first.
        assert!(axis.gaps().iter().all(|g| g.1.since(g.0).as_secs() > 60));
    }

    #[test]
    fn ticks_keep_clear_of_each_other_and_inside_their_segment() {
        let axis = axis(&[(0, 4_550_000), (600_050_000, 600_150_000)]);
        for s in &axis.segments {
            let ticks = axis.ticks(s);
            assert_eq!(ticks[0], (s.from, s.left));
            for w in ticks.windows(2) {
                let end = w[0].1 * 10.0 + w[0].0.to_string().len() as f64 * CHAR_PX;
                assert!(end + LABEL_GAP_PX <= w[1].1 * 10.0 + 1e-6, "{ticks:?}");
            }
            let last = ticks.last().unwrap();
            assert!(
                last.1 * 10.0 + last.0.to_string().len() as f64 * CHAR_PX
                    <= (s.left + s.width) * 10.0 + 1e-6
            );
        }
        assert!(
            axis.ticks(&axis.segments[0]).len() >= 3,
            "the long segment has inner ticks"
        );
    }
}
