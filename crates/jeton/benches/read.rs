//! The auth overhead in process, with criterion: time per request of each
//! side of the pairs in `support` (see there), and of the refusal of a
//! malformed token against `/healthz`. Criterion measures one after the
//! other, so a pair's ratio here drifts with the machine; `auth_overhead`
//! measures the same pairs interleaved, for their ratios.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use support::{Fixture, Pair};

fn read(c: &mut Criterion) {
    let fixture = Fixture::new();
    let runtime = &fixture.runtime;
    let pair = |c: &mut Criterion, pair: &Pair| {
        let mut group = c.benchmark_group(pair.name);
        group.bench_function("without auth", |b| {
            b.to_async(runtime)
                .iter(|| fixture.read(&pair.bare, pair.origin))
        });
        group.bench_function("with auth (publishable key)", |b| {
            b.to_async(runtime)
                .iter(|| fixture.read(&pair.guarded, pair.origin))
        });
        group.finish();
    };
    pair(c, &fixture.whole_app);

    let mut group = c.benchmark_group("refusals, whole app, a new client IP each");
    group.bench_function("GET /healthz", |b| {
        b.to_async(runtime).iter(|| fixture.healthz())
    });
    group.bench_function("malformed token (bad checksum)", |b| {
        b.to_async(runtime).iter(|| fixture.malformed())
    });
    group.finish();

    pair(c, &fixture.bare_handler);
}

criterion_group!(benches, read);
criterion_main!(benches);
