//! The drawing of a run (`sim::viz`): a failing run writes its page, and the data embedded in the
//! page holds what happened — partitions, crashes and restarts, the checks with the failing one,
//! the test's own annotations, messages, and for KV tests the history.
//!
//! The failing runs here fail on purpose: their last check asks for something the cluster cannot
//! give (no leader while a majority is connected; a value nobody wrote). `scripts/viz-browser-check.sh`
//! opens the pages these tests leave in target/sim-traces in headless Chromium.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::Value;
use sim::kv_tester::KvTester;
use sim::kvraft::ReadPath;
use sim::raft_tester::{cmd, Tester, ELECTION_TIMEOUT};
use sim::viz;

const RAFT_RUN: &str = "a_failing_lab_test_draws_its_partitions_crashes_checks_and_annotations";
const RAFT_SEED: u64 = 7;
const KV_RUN: &str = "a_failing_kv_test_draws_its_history_too";
const KV_SEED: u64 = 11;
/// Text that would end the page's data element early if it were not escaped.
const HOSTILE: &str = "</script><b>not markup</b>";

fn events<'a>(data: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    data["events"].as_array().expect("events").iter().filter(move |event| event["kind"] == kind)
}

fn index(value: &Value) -> usize {
    value.as_u64().expect("a server index") as usize
}

/// Runs `body` as a seeded simulated test that must fail, and returns its page's data.
fn failing_run(name: &str, seed: u64, body: impl Fn(&sim::runner::Run)) -> Value {
    let page = viz::output_path(name, seed, "html");
    let _ = std::fs::remove_file(&page);
    eprintln!("(the run {name} below fails on purpose)");
    let outcome = catch_unwind(AssertUnwindSafe(|| sim::runner::run_seeds("viz", name, &[seed], body)));
    assert!(outcome.is_err(), "{name} was meant to fail");
    viz::read_data(&page).unwrap_or_else(|error| panic!("the failing run left no readable page: {error}"))
}

#[test]
fn a_failing_lab_test_draws_its_partitions_crashes_checks_and_annotations() {
    let crashed = std::rc::Rc::new(std::cell::Cell::new((0, 0)));
    let data = failing_run(RAFT_RUN, RAFT_SEED, |run| {
        let t = Tester::new(run, 5, true, false);
        let tester = t.clone();
        let crashed = crashed.clone();
        run.sim.block_on(async move {
            t.begin("a run that fails on purpose");
            let leader = t.check_one_leader().await;
            t.one(cmd(101), 5, true).await;
            t.annotate(Some(leader), "isolating the leader", &format!("the other four should elect another {HOSTILE}"));
            t.disconnect(leader);
            let follower = (leader + 1) % t.n;
            t.crash1(follower);
            crashed.set((leader, follower));
            t.sleep(ELECTION_TIMEOUT).await;
            t.start1(follower);
            t.connect(follower);
            t.sleep(2 * ELECTION_TIMEOUT).await;
            // Four connected servers have a leader by now: this check fails.
            t.check_no_leader();
        });
        tester.cleanup();
    });
    let (leader, follower) = crashed.get();

    assert_eq!(data["outcome"], "failed");
    assert_eq!(data["servers"], 5);
    assert_eq!(data["test"], RAFT_RUN);
    let replay = data["replay"].as_str().expect("a replay command");
    assert!(replay.contains(&format!("SIM_SEED={RAFT_SEED} ")) && replay.contains(&format!("--exact {RAFT_RUN}")), "{replay}");
    let failure = data["failure"]["message"].as_str().expect("a failure message");
    assert!(failure.contains("expected no leader"), "{failure}");

    // The partition: a moment from which the old leader reaches nobody and nobody reaches it.
    let isolated = events(&data, "links").any(|event| {
        let up = &event["up"];
        (0..5).filter(|&j| j != leader).all(|j| up[leader][j] == false && up[j][leader] == false)
            && up[(leader + 2) % 5][(leader + 3) % 5] == true
    });
    assert!(isolated, "no links event isolates the leader {leader}");

    // The crash and the restart of the follower, in that order.
    let stop = events(&data, "stop").find(|event| index(&event["server"]) == follower && event["why"] == "crash");
    let stop_time = stop.expect("the crash is drawn")["t"].as_u64().expect("a time");
    let restarted = events(&data, "start").any(|event| index(&event["server"]) == follower && event["t"].as_u64() >= Some(stop_time));
    assert!(restarted, "the restart of server {follower} is drawn");

    // The checks: the passing ones, and the failing one last.
    let checks: Vec<&Value> = events(&data, "check").collect();
    assert!(checks.iter().any(|check| check["name"] == "one leader" && check["ok"] == true));
    assert!(checks.iter().any(|check| check["name"] == "one(101)" && check["ok"] == true));
    let failing: Vec<&&Value> = checks.iter().filter(|check| check["ok"] == false).collect();
    assert_eq!(failing.len(), 1, "one failing check: {failing:?}");
    assert_eq!(failing[0]["name"], "no leader");
    assert_eq!(failing[0]["t"], data["failure"]["t"]);

    // The test's annotation, in the leader's lane, its text intact; and the tester's own.
    let note = events(&data, "note").find(|note| note["by"] == "test").expect("the test's annotation");
    assert_eq!(note["short"], "isolating the leader");
    assert_eq!(index(&note["server"]), leader);
    assert!(note["details"].as_str().is_some_and(|details| details.ends_with(HOSTILE)));
    assert!(events(&data, "note").any(|note| note["by"] == "tester" && note["short"] == "crash" && index(&note["server"]) == follower));
    assert!(events(&data, "note").any(|note| note["by"] == "tester" && note["short"] == "start(101)"));

    // Roles and messages: leaders were elected, heartbeats flowed, and the cut links lost some.
    assert!(events(&data, "role").any(|role| role["role"] == "leader" && index(&role["server"]) == leader));
    let messages = data["messages"].as_array().expect("messages");
    assert!(messages.iter().any(|message| message["type"] == "Heartbeat" && message["fate"] == "delivered"));
    assert!(messages.iter().any(|message| message["fate"] == "link down" && index(&message["from"]) == leader));
    assert!(events(&data, "index").any(|index| index["commit"].as_u64() >= Some(1)));
}

#[test]
fn a_failing_kv_test_draws_its_history_too() {
    let data = failing_run(KV_RUN, KV_SEED, |run| {
        let t = KvTester::new(run, 3, false, None, ReadPath::ReadIndex);
        let tester = t.clone();
        run.sim.block_on(async move {
            let clerk = t.make_client(&t.all());
            t.put(&clerk, "k", "v", 0).await;
            t.partition(&[0, 1], &[2]);
            t.annotate(None, "minority cut off", "server 2 alone");
            t.put(&clerk, "k", "w", 0).await;
            // Nobody wrote this value: the check fails.
            t.check(&clerk, "k", "x").await;
        });
        tester.cleanup();
    });
    assert_eq!(data["outcome"], "failed");
    let failing: Vec<&Value> = events(&data, "check").filter(|check| check["ok"] == false).collect();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0]["name"], "Get(k)");
    assert!(events(&data, "note").any(|note| note["short"] == "partition" && note["details"] == "[0, 1] | [2]"));
    assert!(events(&data, "note").any(|note| note["by"] == "test" && note["server"].is_null()));
    let history = data["history_html"].as_str().expect("the KV history is in the page");
    assert!(history.contains("LINEARIZABLE"), "the history report says its verdict");
}

#[test]
fn chaos_runs_draw_their_partitions_crashes_and_disk_faults() {
    // Some seed among the first few partitions and crashes (a passing run, drawn on demand).
    let drawn = (1..40).find_map(|seed| {
        let summary = sim::chaos::run(seed).unwrap_or_else(|(_, message, _)| panic!("chaos seed {seed} failed: {message}"));
        let info = viz::RunInfo { test: "chaos", seed, replay: "(replay)" };
        let data = viz::embedded_data(&viz::render(&summary.trace, &info)).expect("the page holds its data");
        let n = data["servers"].as_u64().expect("servers") as usize;
        // A partition during the run (at time 0 the links are still being set up).
        let partitioned = events(&data, "links")
            .any(|event| event["t"].as_u64() > Some(0) && (0..n).any(|i| (0..n).any(|j| event["up"][i][j] == false)));
        let crashed = events(&data, "stop").any(|event| event["why"] == "crash");
        (partitioned && crashed).then_some(data)
    });
    let data = drawn.expect("one of 40 chaos seeds partitions and crashes");
    assert_eq!(data["outcome"], "passed");
    assert!(data["failure"].is_null());
    assert!(events(&data, "check").any(|check| check["name"] == "liveness" && check["ok"] == true));
    assert!(events(&data, "net").next().is_some());

    let with_disk_faults = (1..20).find_map(|seed| {
        let summary = sim::disk_chaos::run(seed).unwrap_or_else(|(_, message, _)| panic!("disk chaos seed {seed} failed: {message}"));
        let info = viz::RunInfo { test: "disk_chaos", seed, replay: "(replay)" };
        let data = viz::embedded_data(&viz::render(&summary.trace, &info)).expect("the page holds its data");
        let has_disk_fault = events(&data, "disk").next().is_some();
        has_disk_fault.then_some(data)
    });
    let data = with_disk_faults.expect("one of 20 disk chaos seeds has a disk fault");
    assert!(events(&data, "check").any(|check| check["name"] == "recovery" && check["ok"] == true));
}
