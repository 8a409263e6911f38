//! `chaos`: runs the randomized safety simulation (`sim::chaos`) for many seeds and prints
//! `N passed, M failed`. Usage: chaos [--seeds N] [--from S] [--trace] [--verbose] [--read-index]
//! [--lease-reads]. `--read-index` adds ReadIndex reads, each checked for linearizability;
//! `--lease-reads` the same with leader leases on every node.

use sim::chaos::ChaosReads;

fn main() -> std::process::ExitCode {
    sim::seeds_cli::main_with_switches("chaos", &["--read-index", "--lease-reads"], |seed, switches| {
        let reads = if switches.iter().any(|switch| switch == "--lease-reads") {
            ChaosReads::Lease
        } else if switches.iter().any(|switch| switch == "--read-index") {
            ChaosReads::ReadIndex
        } else {
            ChaosReads::Off
        };
        match sim::chaos::run_with(seed, reads) {
            Ok(summary) => Ok((
                format!(
                    "{} commands committed, {} terms had a leader, {} reads answered and {} failed, {:.1}s virtual, {:?}",
                    summary.committed,
                    summary.terms_with_leader,
                    summary.reads_answered,
                    summary.reads_failed,
                    summary.virtual_time.as_secs_f64(),
                    summary.params
                ),
                summary.trace,
            )),
            Err((params, message, trace)) => Err((format!("{params:?}, reads: {reads:?}"), message, trace)),
        }
    })
}
