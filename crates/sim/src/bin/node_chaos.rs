//! `node_chaos`: runs the production node's simulation (`sim::node_chaos`) for many seeds and prints
//! `N passed, M failed`. Usage: node_chaos [--seeds N] [--from S] [--trace] [--verbose].

fn main() -> std::process::ExitCode {
    sim::seeds_cli::main("node_chaos", |seed| match sim::node_chaos::run(seed) {
        Ok(summary) => Ok((
            format!(
                "{} answers, {} errors, {} operations checked{}, {:.1}s virtual, {:?}",
                summary.answered,
                summary.errors,
                summary.operations,
                if summary.undecided { " (linearizability undecided within the budget)" } else { "" },
                summary.virtual_time.as_secs_f64(),
                summary.params
            ),
            summary.trace,
        )),
        Err((params, message, trace)) => Err((format!("{params:?}"), message, trace)),
    })
}
