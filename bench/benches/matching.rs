//! CPU of matching one event against the in-memory index entries of its project (1 to 100 000
//! subscriptions, at most 10 matching), and of decoding those entries from DynamoDB items.
//! `make bench` reads the samples criterion writes under `target/criterion/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use webhooks_bench::matching::{
    PreparedIndex, TypeIndex, candidates, decode_items, event, index_items, matcher_loop,
};
use webhooks_core::matching::project_partition;

/// Subscriptions in the event's project.
const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];

fn match_one_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_one_event");
    group.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let e = event("evt-bench");
    for n in SIZES {
        let index = candidates(n);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("matcher_loop", n), &index, |b, index| {
            b.iter(|| matcher_loop(black_box(index), black_box(&e), 0));
        });
        let prepared = PreparedIndex::new(&index);
        group.bench_with_input(BenchmarkId::new("prepared_selections", n), &prepared, |b, prepared| {
            b.iter(|| prepared.matching(black_box(&e)));
        });
        let typed = TypeIndex::new(&index);
        group.bench_with_input(BenchmarkId::new("by_event_type", n), &typed, |b, typed| {
            b.iter(|| typed.matching(black_box(&e)));
        });
    }
    group.finish();
}

fn decode_index_entries(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode_index_entries");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for n in [1, 100, 10_000] {
        let index = candidates(n);
        let items = index_items(&index.by_partition[&project_partition("acme", "p1")]);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("serde_dynamo", n), &items, |b, items| {
            b.iter_batched(|| items.clone(), |items| decode_items(black_box(items)), BatchSize::LargeInput);
        });
    }
    group.finish();
}

criterion_group!(benches, match_one_event, decode_index_entries);
criterion_main!(benches);
