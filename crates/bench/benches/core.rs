//! Committed entries per second of the pure core: 3 in-memory nodes, no I/O, batched proposals.
//! Run: cargo bench -p bench

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use bench::MemoryCluster;

fn committed_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("core_3_nodes");
    for batch in [1usize, 64, 1024] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch_{batch}_x_16B"), |b| {
            b.iter_batched_ref(
                || MemoryCluster::elected(3),
                |cluster| cluster.propose_and_commit(batch, 16),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    // Steady state: one long-lived cluster, so the figure excludes election and set-up.
    let mut group = c.benchmark_group("core_3_nodes_steady");
    let batch = 1024;
    group.throughput(Throughput::Elements(batch as u64));
    let mut cluster = MemoryCluster::elected(3);
    group.bench_function("batch_1024_x_16B", |b| b.iter(|| cluster.propose_and_commit(batch, 16)));
    group.finish();
}

criterion_group!(benches, committed_entries);
criterion_main!(benches);
