//! `disk_chaos`: runs the randomized safety simulation with disk faults (`sim::disk_chaos`) for many
//! seeds and prints `N passed, M failed`. Usage: disk_chaos [--seeds N] [--from S] [--trace] [--verbose]

fn main() -> std::process::ExitCode {
    sim::seeds_cli::main("disk_chaos", |seed| match sim::disk_chaos::run(seed) {
        Ok(summary) => Ok((
            format!(
                "{} commands committed, {} terms had a leader, {:.1}s virtual, {:?}, {:?}",
                summary.committed,
                summary.terms_with_leader,
                summary.virtual_time.as_secs_f64(),
                summary.faults,
                summary.params
            ),
            summary.trace,
        )),
        Err((params, message, trace)) => Err((format!("{params:?}"), message, trace)),
    })
}
