//! `node_chaos`: runs the production node's simulation (`sim::node_chaos`) for many seeds and prints
//! `N passed, M failed`. Usage: node_chaos [--seeds N] [--from S] [--trace] [--verbose]
//! [--broken-answers-by-id | --broken-parked-overtaken | --broken-forwards-dropped |
//! --broken-duplicates-served | --broken-hello-ignored | --broken-links-dropped-at-once |
//! --broken-forwards-kept-across-terms | --broken-cluster-not-vouched | --broken-expiry-by-own-clock] [--cas] [--strings]: the `--broken-*` switches
//! run every node deliberately broken (`replica::Mutation`), to see which seeds catch it;
//! `--cas` adds four clients that take a lock with SET NX PX and give it back with DELEX IFEQ,
//! and two that write versioned keys with VGET and VSET (their history checked); `--strings`
//! three that use counters (tagged INCRBY), expiring keys (SET PX) and transactions (MULTI …
//! EXEC), their history checked with the strings model.

use replica::Mutation;

const MUTATIONS: [(&str, Mutation); 10] = [
    ("--broken-answers-by-id", Mutation::AnswersMatchedByIdAlone),
    ("--broken-parked-overtaken", Mutation::ParkedOvertakenByNewer),
    ("--broken-forwards-dropped", Mutation::ForwardsDroppedSilently),
    ("--broken-duplicates-served", Mutation::DuplicateForwardsServed),
    ("--broken-hello-ignored", Mutation::HelloIgnored),
    ("--broken-links-dropped-at-once", Mutation::LinksDroppedAtOnce),
    ("--broken-forwards-kept-across-terms", Mutation::ForwardsKeptAcrossTerms),
    ("--broken-cluster-not-vouched", Mutation::ClusterNotVouched),
    ("--broken-expiry-by-own-clock", Mutation::ExpiryByOwnClock),
    ("--broken-follower-reads-unconfirmed", Mutation::FollowerReadsUnconfirmed),
];

fn main() -> std::process::ExitCode {
    let mut switches: Vec<&str> = MUTATIONS.iter().map(|(switch, _)| *switch).collect();
    switches.extend(["--cas", "--strings"]);
    sim::seeds_cli::main_with_switches("node_chaos", &switches, |seed, given| {
        let mutation = MUTATIONS.iter().find(|(switch, _)| given.iter().any(|g| g == switch)).map_or(Mutation::None, |(_, m)| *m);
        let cas = given.iter().any(|g| g == "--cas");
        let strings = given.iter().any(|g| g == "--strings");
        match sim::node_chaos::run_with(seed, mutation, |params| {
            if cas {
                (params.lock_clients, params.versioned_clients) = (4, 2);
            }
            if strings {
                params.strings_clients = 3;
            }
        }) {
            Ok(summary) => Ok((
                format!(
                    "{} answers, {} errors, {} snapshot chunks, {} saves on a full disk, {} operations checked{}, {} lock holds ({} past the lease), {} versioned operations ({} VSETs took effect), {} strings operations ({} expired reads, {} transactions), {:.1}s virtual, {:?}",
                    summary.answered,
                    summary.errors,
                    summary.snapshot_chunks,
                    summary.saves_on_full_disk,
                    summary.operations,
                    if summary.undecided { " (linearizability undecided within the budget)" } else { "" },
                    summary.holds,
                    summary.holds_past_lease,
                    summary.versioned_operations,
                    summary.versioned_puts_ok,
                    summary.strings_operations,
                    summary.expired_reads,
                    summary.transactions,
                    summary.virtual_time.as_secs_f64(),
                    summary.params
                ),
                summary.trace,
            )),
            Err((params, message, trace)) => Err((format!("{params:?}"), message, trace)),
        }
    })
}
