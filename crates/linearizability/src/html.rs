//! A self-contained HTML report of a check: a verdict header, then per part a timeline with one
//! lane per client and one bar per operation, from its call to its return.
//!
//! Why this picture: a failure is about *order in time*, and the first question a person asks is
//! "which operations overlapped the bad one, and what had already happened". The time axis is
//! therefore an *event order* axis (each distinct timestamp gets one slot), not to scale: real
//! timestamps can be nanoseconds apart or seconds apart, and only their order matters to
//! linearizability. Within a slot, calls are drawn left of returns, so operations whose ends touch
//! at one instant visibly overlap, as they do for the checker.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use crate::{CheckResult, Model, Operation, PartitionFailure};

/// At most this many parts are drawn when the history passed (or is undecided).
const MAX_PARTS: usize = 12;
/// At most this many operations are drawn for a part that passed (its beginning): enough to see
/// the shape of the history, few enough that bars keep readable labels.
const MAX_OPS: usize = 80;
/// A failing part shows a window of operations around the one that could not be placed (by call
/// order): this many called before it, and this many after, so the failure fits on one screen.
const WINDOW_BEFORE: usize = 36;
const WINDOW_AFTER: usize = 12;
/// How many of the last steps of a failing part's linearization are listed in its table.
const MAX_STEPS_LISTED: usize = 15;

/// Writes the report of `result` (as returned by [`crate::check`] for the same model and history)
/// to `path`, as one HTML file with inline CSS and SVG and no script, so it opens anywhere,
/// offline, and can be attached to a bug report.
///
/// Which parts are drawn: every failing part when the result is `Illegal`; otherwise the first
/// parts of the history (up to a dozen, each cut to its first operations), to show what was
/// checked. A failing part is drawn as a window of operations around the failure.
pub fn write_html<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    result: &CheckResult,
    path: &std::path::Path,
) -> std::io::Result<()> {
    std::fs::write(path, render_html(model, history, result))
}

/// The role of an operation in the drawing, which decides its colour.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// In the longest linearizable prefix, at this 1-based position.
    Linearized(usize),
    /// Reached its return before it could be linearized.
    Blocking,
    /// Could have come next, but fits nowhere.
    Candidate,
    /// Not reached by the longest prefix.
    Unreached,
    /// An operation of a part that passed (or was not decided): no order to show.
    Plain,
}

impl Role {
    fn colours(self) -> (&'static str, &'static str) {
        match self {
            Role::Linearized(_) => ("#c8e6c9", "#2e7d32"),
            Role::Blocking => ("#ffcdd2", "#c62828"),
            Role::Candidate => ("#ffe0b2", "#ef6c00"),
            Role::Unreached => ("#eceff1", "#90a4ae"),
            Role::Plain => ("#bbdefb", "#1565c0"),
        }
    }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, marking the cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn part_name(label: &str, index: usize) -> String {
    if label.is_empty() {
        format!("partition {index}")
    } else {
        label.to_string()
    }
}

const STYLE: &str = "
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #212121; }
h1 { font-size: 22px; margin: 0 0 6px 0; }
h2 { font-size: 17px; margin: 28px 0 4px 0; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; color: white; }
.ok { background: #2e7d32; } .illegal { background: #c62828; } .unknown { background: #ef6c00; }
.summary, .note { color: #424242; margin: 4px 0; }
.note { font-size: 13px; color: #616161; }
.legend span.sw { display: inline-block; width: 22px; height: 12px; border: 1.5px solid; vertical-align: middle; margin: 0 4px 0 14px; border-radius: 2px; }
.legend { font-size: 13px; margin: 10px 0; line-height: 1.7; }
.legend .item { white-space: nowrap; }
.timeline { overflow-x: auto; border: 1px solid #e0e0e0; border-radius: 4px; background: #fafafa; }
table { border-collapse: collapse; font-size: 13px; margin-top: 8px; }
td, th { padding: 2px 10px; border-bottom: 1px solid #eeeeee; text-align: left; font-family: ui-monospace, monospace; }
th { font-family: inherit; background: #f5f5f5; }
tr.blocking td { background: #ffebee; color: #b71c1c; font-weight: bold; }
tr.candidate td { background: #fff3e0; }
";

/// The page [`write_html`] writes, as a string (e.g. to embed in another report).
pub fn render_html<M: Model>(model: &M, history: &[Operation<M::Input, M::Output>], result: &CheckResult) -> String {
    let parts = model.partition(history);
    let clients = history.iter().map(|o| o.client).collect::<std::collections::BTreeSet<_>>().len();
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Linearizability check</title>\n<style>");
    h.push_str(STYLE);
    h.push_str("</style></head><body>\n");

    let (class, word) = match result {
        CheckResult::Ok => ("ok", "LINEARIZABLE"),
        CheckResult::Illegal(_) => ("illegal", "NOT LINEARIZABLE"),
        CheckResult::Unknown => ("unknown", "UNKNOWN"),
    };
    let _ = writeln!(h, "<h1>Linearizability check: <span class=\"verdict {class}\">{word}</span></h1>");
    let _ = writeln!(
        h,
        "<p class=\"summary\">History of {} operations by {} clients, checked as {} independent partition(s).</p>",
        history.len(),
        clients,
        parts.len()
    );

    match result {
        CheckResult::Illegal(failure) => {
            let names: Vec<String> =
                failure.partitions.iter().map(|p| esc(&part_name(&p.label, p.partition))).collect();
            let _ = writeln!(
                h,
                "<p class=\"summary\">{} partition(s) cannot be linearized: <b>{}</b>. Below, for each, the longest \
                 linearizable prefix the search found and the operation that could not come next.</p>",
                failure.partitions.len(),
                names.join(", ")
            );
            legend(&mut h, true);
            for p in &failure.partitions {
                failing_section(&mut h, model, history, p);
            }
        }
        CheckResult::Ok | CheckResult::Unknown => {
            if matches!(result, CheckResult::Unknown) {
                h.push_str(
                    "<p class=\"summary\">The step budget ran out before every partition was decided, and none \
                     was found illegal. <b>This is not a pass</b>: raise the budget, or shorten the history.</p>\n",
                );
            } else {
                h.push_str("<p class=\"summary\">Every partition has a linearization.</p>\n");
            }
            legend(&mut h, false);
            for (i, part) in parts.iter().enumerate().take(MAX_PARTS) {
                plain_section(&mut h, model, history, i, part);
            }
            if parts.len() > MAX_PARTS {
                let _ = writeln!(h, "<p class=\"note\">{} more partition(s) not drawn.</p>", parts.len() - MAX_PARTS);
            }
        }
    }
    h.push_str("</body></html>\n");
    h
}

fn legend(h: &mut String, failing: bool) {
    let items: &[(Role, &str)] = if failing {
        &[
            (Role::Linearized(1), "linearized (numbered in linearization order; hover for the state after it)"),
            (Role::Blocking, "could not be placed: it returned before it could take effect"),
            (Role::Candidate, "could also have come next, but fits nowhere either"),
            (Role::Unreached, "after the failure point"),
        ]
    } else {
        &[(Role::Plain, "operation (hover for details)")]
    };
    h.push_str("<div class=\"legend\">");
    for (role, text) in items {
        let (fill, stroke) = role.colours();
        let _ = write!(
            h,
            "<span class=\"item\"><span class=\"sw\" style=\"background:{fill};border-color:{stroke}\"></span>{}</span>",
            esc(text)
        );
    }
    h.push_str("<span class=\"item\"><span class=\"sw\" style=\"border-style:dashed;border-color:#616161\"></span>outcome unknown (may take effect any time after its call, or never)</span>");
    h.push_str("<br>Bars run from call to return; the time axis is ordered by event, not to scale.</div>\n");
}

fn failing_section<M: Model>(
    h: &mut String,
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    p: &PartitionFailure,
) {
    let mut roles: HashMap<usize, Role> = p.operations.iter().map(|&o| (o, Role::Unreached)).collect();
    let mut states: HashMap<usize, &str> = HashMap::new();
    for (k, step) in p.prefix.iter().enumerate() {
        roles.insert(step.op, Role::Linearized(k + 1));
        states.insert(step.op, &step.state);
    }
    for &c in &p.candidates {
        roles.insert(c, Role::Candidate);
    }
    roles.insert(p.blocking, Role::Blocking);

    // A window of operations around the failure, by call order, plus every candidate.
    let mut by_call = p.operations.clone();
    by_call.sort_by_key(|&o| (history[o].call, o));
    let pos = by_call.iter().position(|&o| o == p.blocking).unwrap_or(0);
    let lo = pos.saturating_sub(WINDOW_BEFORE);
    let hi = (pos + 1 + WINDOW_AFTER).min(by_call.len());
    let mut shown: Vec<usize> = by_call[lo..hi].to_vec();
    for &c in &p.candidates {
        if !shown.contains(&c) {
            shown.push(c);
        }
    }

    let state_now = p.prefix.last().map_or(&p.initial_state, |l| &l.state);
    let b = &history[p.blocking];
    let _ = writeln!(h, "<h2>{} — <span style=\"color:#c62828\">not linearizable</span></h2>", esc(&part_name(&p.label, p.partition)));
    let _ = writeln!(
        h,
        "<p class=\"summary\">{} operations. The longest linearizable prefix has <b>{}</b> of them, leaving the state \
         <code>{}</code>. Then <b style=\"color:#c62828\">{}</b> (client {}) must take effect before it returns at time {}, \
         but it cannot be placed there{}.</p>",
        p.operations.len(),
        p.prefix.len(),
        esc(state_now),
        esc(&model.describe_operation(&b.input, b.output.as_ref())),
        b.client,
        b.return_time.map_or("∞".to_string(), |t| t.to_string()),
        match p.candidates.len().saturating_sub(1) {
            0 => String::new(),
            k => format!(", and none of the {k} other operation(s) that could come next (orange) leads anywhere either"),
        },
    );
    if shown.len() < p.operations.len() {
        let _ = writeln!(
            h,
            "<p class=\"note\">Showing {} of {} operations: those called around the failure.</p>",
            shown.len(),
            p.operations.len()
        );
    }
    let deadline = b.return_time.map(|t| (t, model.describe_operation(&b.input, b.output.as_ref())));
    timeline(h, model, history, &shown, &roles, &states, deadline);

    // The end of the linearization, then the operations that could not come next.
    h.push_str("<table><tr><th>#</th><th>client</th><th>call</th><th>return</th><th>operation</th><th>state after</th></tr>\n");
    let first = p.prefix.len().saturating_sub(MAX_STEPS_LISTED);
    if first > 0 {
        let _ = writeln!(h, "<tr><td colspan=\"6\">… {first} earlier step(s)</td></tr>");
    } else {
        let _ = writeln!(h, "<tr><td>0</td><td></td><td></td><td></td><td>(initial state)</td><td>{}</td></tr>", esc(&p.initial_state));
    }
    for (k, step) in p.prefix.iter().enumerate().skip(first) {
        let o = &history[step.op];
        row(h, "", &(k + 1).to_string(), o, &model.describe_operation(&o.input, o.output.as_ref()), &step.state);
    }
    let mut next = p.candidates.clone();
    next.sort_by_key(|&c| (c != p.blocking, history[c].call, c));
    for c in next {
        let o = &history[c];
        let (class, what) = if c == p.blocking { ("blocking", "✗ cannot be placed") } else { ("candidate", "✗ fits nowhere") };
        row(h, class, "next?", o, &model.describe_operation(&o.input, o.output.as_ref()), what);
    }
    h.push_str("</table>\n");
}

fn row<I, O>(h: &mut String, class: &str, num: &str, o: &Operation<I, O>, desc: &str, state: &str) {
    let ret = o.return_time.map_or("∞".to_string(), |t| t.to_string());
    let _ = writeln!(
        h,
        "<tr class=\"{class}\"><td>{num}</td><td>{}</td><td>{}</td><td>{ret}</td><td>{}</td><td>{}</td></tr>",
        o.client,
        o.call,
        esc(desc),
        esc(state)
    );
}

fn plain_section<M: Model>(
    h: &mut String,
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    index: usize,
    part: &[usize],
) {
    let label = model.describe_partition(history, part);
    let mut by_call = part.to_vec();
    by_call.sort_by_key(|&o| (history[o].call, o));
    by_call.truncate(MAX_OPS);
    let _ = writeln!(h, "<h2>{} — {} operations</h2>", esc(&part_name(&label, index)), part.len());
    if by_call.len() < part.len() {
        let _ = writeln!(h, "<p class=\"note\">Showing the first {} operations.</p>", by_call.len());
    }
    let roles: HashMap<usize, Role> = by_call.iter().map(|&o| (o, Role::Plain)).collect();
    timeline(h, model, history, &by_call, &roles, &HashMap::new(), None);
}

/// Draws the lanes. `deadline`, if any, is marked with a red line: the return of the operation
/// that could not be placed.
fn timeline<M: Model>(
    h: &mut String,
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    shown: &[usize],
    roles: &HashMap<usize, Role>,
    states: &HashMap<usize, &str>,
    deadline: Option<(u64, String)>,
) {
    const LEFT: f64 = 84.0;
    const ROW: f64 = 28.0;
    const BAR: f64 = 20.0;
    const TOP: f64 = 26.0;
    const CHAR: f64 = 6.6;

    // Event-order axis: one slot per distinct timestamp.
    let mut times: Vec<u64> = shown.iter().flat_map(|&o| [Some(history[o].call), history[o].return_time]).flatten().collect();
    times.sort_unstable();
    times.dedup();
    let slot = (1200.0 / times.len().max(1) as f64).clamp(16.0, 90.0);
    let rank = |t: u64| times.partition_point(|&x| x < t) as f64;
    let x_call = |t: u64| LEFT + rank(t) * slot + slot * 0.15;
    let x_ret = |t: u64| LEFT + rank(t) * slot + slot * 0.85;
    let right = LEFT + times.len() as f64 * slot + 40.0;

    // Lanes by client; within a lane, overlapping operations of one client get extra rows.
    let mut lanes: BTreeMap<u64, Vec<(usize, usize)>> = BTreeMap::new(); // client -> (op, row)
    let mut sorted = shown.to_vec();
    sorted.sort_by_key(|&o| (history[o].call, o));
    let mut row_ends: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for &o in &sorted {
        let op = &history[o];
        let start = x_call(op.call);
        let end = op.return_time.map_or(right, x_ret);
        let ends = row_ends.entry(op.client).or_default();
        let r = match ends.iter().position(|&e| e < start) {
            Some(r) => r,
            None => {
                ends.push(0.0);
                ends.len() - 1
            }
        };
        ends[r] = end;
        lanes.entry(op.client).or_default().push((o, r));
    }
    let mut lane_top = BTreeMap::new();
    let mut y = TOP;
    for (client, ends) in &row_ends {
        lane_top.insert(*client, y);
        y += ends.len() as f64 * ROW + 8.0;
    }
    // Room under the lanes for the callout naming the operation that could not be placed: its bar
    // is often too short to hold its own label, and it is the one thing a reader must see.
    let lanes_bottom = y;
    let height = y + if deadline.is_some() { 26.0 } else { 8.0 };

    h.push_str("<div class=\"timeline\">");
    let _ = writeln!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{right:.0}\" height=\"{height:.0}\" font-family=\"ui-monospace, monospace\" font-size=\"11\">"
    );
    // Lane backgrounds and names.
    for (i, (client, ends)) in row_ends.iter().enumerate() {
        let top = lane_top[client];
        let lane_h = ends.len() as f64 * ROW + 4.0;
        let fill = if i % 2 == 0 { "#ffffff" } else { "#f3f3f3" };
        let _ = writeln!(h, "<rect x=\"0\" y=\"{:.1}\" width=\"{right:.0}\" height=\"{lane_h:.1}\" fill=\"{fill}\"/>", top - 2.0);
        let _ = writeln!(
            h,
            "<text x=\"8\" y=\"{:.1}\" font-family=\"system-ui, sans-serif\" font-size=\"12\" fill=\"#424242\">client {client}</text>",
            top + BAR / 2.0 + 4.0
        );
    }
    // A few time ticks, so a person can match bars with the table's timestamps.
    let every = ((70.0 / slot).ceil() as usize).max(1);
    for &t in times.iter().step_by(every) {
        let x = x_call(t);
        let _ = writeln!(h, "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#e0e0e0\"/>", height);
        let _ = writeln!(h, "<text x=\"{x:.1}\" y=\"11\" fill=\"#9e9e9e\" font-size=\"10\">t={t}</text>");
    }
    if let Some((d, what)) = &deadline {
        let x = x_ret(*d);
        let _ = writeln!(
            h,
            "<line x1=\"{x:.1}\" y1=\"14\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#c62828\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"><title>deadline: the red operation returned here</title></line>",
            lanes_bottom + 6.0
        );
        let text = format!("returned here without a place: {what}");
        // Right-aligned to the line when it would run off the drawing; the arrow points at it.
        let anchor = if x + (text.chars().count() + 2) as f64 * CHAR > right { "end" } else { "start" };
        let text = if anchor == "end" { format!("{text} ▲") } else { format!("▲ {text}") };
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#c62828\" font-weight=\"bold\" text-anchor=\"{anchor}\">{}</text>",
            if anchor == "end" { x + 4.0 } else { x - 4.0 },
            lanes_bottom + 18.0,
            esc(&text)
        );
    }
    // The bars.
    for (client, ops) in &lanes {
        let top = lane_top[client];
        for &(o, r) in ops {
            let op = &history[o];
            let role = roles.get(&o).copied().unwrap_or(Role::Unreached);
            let (fill, stroke) = role.colours();
            let x0 = x_call(op.call);
            let x1 = op.return_time.map_or(right - 4.0, x_ret);
            let w = (x1 - x0).max(4.0);
            let yb = top + r as f64 * ROW;
            let desc = model.describe_operation(&op.input, op.output.as_ref());
            let mut tip = format!(
                "client {} · call {} · return {}\n{}",
                op.client,
                op.call,
                op.return_time.map_or("unknown".to_string(), |t| t.to_string()),
                desc
            );
            match role {
                Role::Linearized(k) => {
                    let _ = write!(tip, "\n#{k} in the linearization; state after: {}", states.get(&o).unwrap_or(&"?"));
                }
                Role::Blocking => tip.push_str("\ncould not be placed after the prefix: it returned first"),
                Role::Candidate => tip.push_str("\ncould have come next, but fits nowhere"),
                _ => {}
            }
            let dash = if op.return_time.is_none() { " stroke-dasharray=\"4,3\"" } else { "" };
            let sw = if role == Role::Blocking { 2.5 } else { 1.2 };
            let _ = writeln!(
                h,
                "<g><title>{}</title><rect x=\"{x0:.1}\" y=\"{yb:.1}\" width=\"{w:.1}\" height=\"{BAR}\" rx=\"3\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"{dash}/>",
                esc(&tip)
            );
            let mut tx = x0 + 4.0;
            if let Role::Linearized(k) = role {
                let badge = format!("{k}");
                let bw = badge.len() as f64 * CHAR + 6.0;
                if w > bw + 4.0 {
                    let _ = write!(
                        h,
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" rx=\"2\" fill=\"{stroke}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"white\" font-weight=\"bold\">{badge}</text>",
                        x0 + 2.0,
                        yb + 3.0,
                        BAR - 6.0,
                        x0 + 5.0,
                        yb + BAR / 2.0 + 4.0
                    );
                    tx += bw + 1.0;
                }
            }
            let room = ((x0 + w - tx - 3.0) / CHAR).floor().max(0.0) as usize;
            let label = fit(&desc, room);
            if !label.is_empty() {
                let weight = if role == Role::Blocking { " font-weight=\"bold\"" } else { "" };
                let _ = write!(h, "<text x=\"{tx:.1}\" y=\"{:.1}\" fill=\"#212121\"{weight}>{}</text>", yb + BAR / 2.0 + 4.0, esc(&label));
            }
            h.push_str("</g>\n");
        }
    }
    h.push_str("</svg></div>\n");
}
