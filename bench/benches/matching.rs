//! CPU of matching one event against the in-memory index entries of its project (1 to 100 000
//! subscriptions, at most 10 matching), of building the batch's match index those entries go
//! into, and of decoding them from DynamoDB items.
//! `make bench` reads the samples criterion writes under `target/criterion/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use webhooks_bench::matching::{
    candidates, decode_items, event, index_items, scan_loop, shipped_index, shipped_match, shipped_owners,
};
use webhooks_core::matching::project_partition;
use webhooks_core::signing::webhook_message_id;

/// Subscriptions in the event's project.
const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];

fn match_one_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_one_event");
    group.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    let e = event("evt-bench");
    let message_id = webhook_message_id(&e.company_id, &e.source, &e.id);
    for n in SIZES {
        let c = candidates(n);
        group.throughput(Throughput::Elements(1));
        // The matcher as shipped: the batch's index is built once; each event is matched in it
        // (the webhooks it is for), then its delivery messages are built (one SHA-256 and one
        // copy of the event per delivery).
        let index = shipped_index(&c);
        let owners = shipped_owners(&c);
        group.bench_with_input(BenchmarkId::new("shipped", n), &index, |b, index| {
            b.iter(|| index.matching(black_box(&e)));
        });
        group.bench_with_input(BenchmarkId::new("shipped_with_messages", n), &index, |b, index| {
            b.iter(|| shipped_match(black_box(index), &owners, black_box(&e), &message_id, 0));
        });
        // The baseline: every entry of the project visited for every event.
        group.bench_with_input(BenchmarkId::new("scan_loop", n), &c, |b, c| {
            b.iter(|| scan_loop(black_box(c), black_box(&e), 0));
        });
    }
    group.finish();
}

/// Building the match index of one batch's reads (once per batch, whatever its events).
fn build_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_index");
    group.sample_size(20).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    for n in SIZES {
        let c = candidates(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("shipped", n), &c, |b, c| {
            b.iter(|| shipped_index(black_box(c)));
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

criterion_group!(benches, match_one_event, build_index, decode_index_entries);
criterion_main!(benches);
