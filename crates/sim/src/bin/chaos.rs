//! `chaos`: runs the randomized safety simulation (`sim::chaos`) for many seeds and prints
//! `N passed, M failed`. Usage: chaos [--seeds N] [--from S] [--trace] [--verbose]

fn main() -> std::process::ExitCode {
    sim::seeds_cli::main("chaos", |seed| match sim::chaos::run(seed) {
        Ok(summary) => Ok((
            format!(
                "{} commands committed, {} terms had a leader, {:.1}s virtual, {:?}",
                summary.committed,
                summary.terms_with_leader,
                summary.virtual_time.as_secs_f64(),
                summary.params
            ),
            summary.trace,
        )),
        Err((params, message, trace)) => Err((format!("{params:?}"), message, trace)),
    })
}
