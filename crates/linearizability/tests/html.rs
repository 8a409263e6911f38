//! The HTML report: written, self-contained, and carrying the verdict. The files are kept under
//! the target directory so a person can open them.

mod common;

use common::*;
use linearizability::kv::{KvInput, KvModel, KvOutput};
use linearizability::{check, write_html, CheckResult};
use std::path::PathBuf;

fn out(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[test]
fn illegal_report_names_the_verdict_and_the_failure() {
    let mut h = random_history(3, 5, 60, 2, 5);
    // A stale read on k0 near the end, plus a hand-made failure on key "<b>" (escaping).
    let last_get = (0..h.len()).rev().find(|&i| h[i].input.key == "k0" && h[i].output.as_ref().is_some_and(|o| !o.value.is_empty()) && h[i].input.op == linearizability::kv::KvOp::Get).unwrap();
    h[last_get].output = Some(KvOutput::new("stale?"));
    h.push(put(0, "<b>", "1", 0, 10));
    h.push(get(1, "<b>", 20, 30, ""));
    let r = check(&KvModel, &h, 1_000_000);
    assert!(matches!(r, CheckResult::Illegal(_)));
    let path = out("illegal.html");
    write_html(&KvModel, &h, &r, &path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("NOT LINEARIZABLE"));
    assert!(html.contains("key &quot;k0&quot;"));
    assert!(html.contains("key &quot;&lt;b&gt;&quot;"), "labels are escaped");
    assert!(!html.contains("<script"), "no scripts");
    assert!(html.contains("<svg") && html.contains("<title>"));
    assert!(html.contains("get(&quot;k0&quot;) → &quot;stale?&quot;"));
}

#[test]
fn ok_and_unknown_reports_name_the_verdict() {
    let mut h = random_history(4, 4, 40, 3, 5);
    h.push(unknown(9, KvInput::get("k1"), 50));
    let r = check(&KvModel, &h, 1_000_000);
    assert_eq!(r, CheckResult::Ok);
    let path = out("ok.html");
    write_html(&KvModel, &h, &r, &path).unwrap();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains(">LINEARIZABLE<"));
    assert!(html.contains("stroke-dasharray"), "unknown outcomes are dashed");

    let path = out("unknown.html");
    write_html(&KvModel, &h, &CheckResult::Unknown, &path).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().contains("UNKNOWN"));
}
