//! Draws a simulated run as one self-contained HTML page (inline script and style, no network),
//! written next to its text trace: one lane per server over virtual time (role and term, crashes
//! and restarts, disk faults, commit and applied index), the network's partitions and modes as
//! bands, the tester's checks as markers with the failing one highlighted, messages as arrows,
//! annotations, the replay command, and for KV tests the linearizability history below.
//!
//! The page is `viz/page.html` with the run's data, as JSON, in its `sim-data` script element;
//! tests read the data back with [`embedded_data`]. Every failing run writes its page; a passing
//! one does when `SIM_VIZ=1` is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use raft::Role;
use serde_json::{json, Value};

use crate::trace::{Event, Fate, MessageRecord, NoteBy, Trace};

const TEMPLATE: &str = include_str!("viz/page.html");
const PLACEHOLDER: &str = "__SIM_DATA__";
/// The page shows the end of the text trace too; the whole of it is in the `.log` file.
const TRACE_LINES: usize = 3_000;
/// Bumped whenever the data's shape changes, so that the page and tests can tell.
const SCHEMA: u64 = 1;

/// The name of a run, and how to replay it.
pub struct RunInfo<'a> {
    pub test: &'a str,
    pub seed: u64,
    pub replay: &'a str,
}

/// Whether passing runs should be drawn too (`SIM_VIZ=1`).
pub fn draw_passing() -> bool {
    std::env::var("SIM_VIZ").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// Where a run's trace and page go: `target/sim-traces/<test>-<seed>.<extension>`.
pub fn output_path(test: &str, seed: u64, extension: &str) -> PathBuf {
    // The workspace's target directory: two levels above this crate's manifest.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap_or(Path::new("."));
    root.join("target/sim-traces").join(format!("{test}-{seed}.{extension}"))
}

/// Writes the page of a run (failed when the trace holds a failure) and its full text trace.
/// Returns the page's path.
pub fn write(trace: &Trace, info: &RunInfo) -> std::io::Result<PathBuf> {
    let page = output_path(info.test, info.seed, "html");
    if let Some(dir) = page.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(output_path(info.test, info.seed, "log"), trace.all().join("\n"))?;
    std::fs::write(&page, render(trace, info))?;
    Ok(page)
}

/// Writes the page and says where on stderr (or why it could not).
pub fn write_and_tell(trace: &Trace, info: &RunInfo) {
    match write(trace, info) {
        Ok(page) => eprintln!("drawing of the run: {}", page.display()),
        Err(error) => eprintln!("could not write the drawing of the run: {error}"),
    }
}

pub fn render(trace: &Trace, info: &RunInfo) -> String {
    // No `<` at all inside the script element: neither `</script>` nor `<!--` in some text can
    // end or confuse it (`\u003c` is the same character to a JSON parser).
    let json = data(trace, info).to_string().replace('<', "\\u003c");
    TEMPLATE.replacen(PLACEHOLDER, &json, 1)
}

/// The data embedded in a page `render` made.
pub fn embedded_data(page: &str) -> Option<Value> {
    let start = page.find("<script type=\"application/json\" id=\"sim-data\">")?;
    let body = &page[start..];
    let body = &body[body.find('>')? + 1..];
    let end = body.find("</script>")?;
    serde_json::from_str(&body[..end]).ok()
}

/// Reads the data of a page on disk.
pub fn read_data(path: &Path) -> std::io::Result<Value> {
    let page = std::fs::read_to_string(path)?;
    embedded_data(&page).ok_or_else(|| std::io::Error::other(format!("{} holds no run data", path.display())))
}

fn micros(at: Duration) -> u64 {
    at.as_micros() as u64
}

fn data(trace: &Trace, info: &RunInfo) -> Value {
    let events = trace.events();
    let messages = trace.messages();
    let failure = trace.failure();
    let last_event = events.last().map_or(Duration::ZERO, |(at, _)| *at);
    let last_message = messages.iter().filter_map(|message| message.arrive.or(Some(message.sent))).max().unwrap_or_default();
    let end = failure.as_ref().map_or(Duration::ZERO, |(at, _)| *at).max(last_event).max(last_message);
    let (dropped_events, dropped_messages) = trace.dropped();
    json!({
        "schema": SCHEMA,
        "test": info.test,
        "seed": info.seed,
        "replay": info.replay,
        "outcome": if failure.is_some() { "failed" } else { "passed" },
        "failure": failure.map(|(at, message)| json!({ "t": micros(at), "message": message })),
        "servers": trace.servers(),
        "end": micros(end),
        "dropped": { "events": dropped_events, "messages": dropped_messages },
        "events": events.iter().map(|(at, event)| event_json(*at, event)).collect::<Vec<_>>(),
        "messages": messages.iter().map(message_json).collect::<Vec<_>>(),
        "trace": trace.tail(TRACE_LINES),
        "history_html": trace.history(),
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "precandidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

fn event_json(at: Duration, event: &Event) -> Value {
    let t = micros(at);
    match event {
        Event::Role { server, role, term, leader } => {
            json!({ "t": t, "kind": "role", "server": server, "role": role_name(*role), "term": term, "leader": leader })
        }
        Event::Start { server, term } => json!({ "t": t, "kind": "start", "server": server, "term": term }),
        Event::Stop { server, why } => json!({ "t": t, "kind": "stop", "server": server, "why": why }),
        Event::Index { server, commit, applied, last, snapshot } => json!({
            "t": t, "kind": "index", "server": server, "commit": commit, "applied": applied, "last": last, "snapshot": snapshot
        }),
        Event::Disk { server, what } => json!({ "t": t, "kind": "disk", "server": server, "what": what }),
        Event::Links(up) => json!({ "t": t, "kind": "links", "up": up }),
        Event::Net { reliable, long_reordering, long_delays } => json!({
            "t": t, "kind": "net", "reliable": reliable, "long_reordering": long_reordering, "long_delays": long_delays
        }),
        Event::Check { name, ok, detail } => json!({ "t": t, "kind": "check", "name": name, "ok": ok, "detail": detail }),
        Event::Note { server, short, details, by } => json!({
            "t": t, "kind": "note", "server": server, "short": short, "details": details,
            "by": match by { NoteBy::Tester => "tester", NoteBy::Test => "test" }
        }),
    }
}

fn message_json(message: &MessageRecord) -> Value {
    let fate = match message.fate {
        Fate::Delivered => "delivered",
        Fate::Dropped => "dropped",
        Fate::LinkDown => "link down",
        Fate::ServerGone => "server gone",
    };
    json!({
        "from": message.from,
        "to": message.to,
        "sent": micros(message.sent),
        "arrive": message.arrive.map(micros),
        "type": message.kind,
        "fate": fate,
        "text": message.text,
    })
}
