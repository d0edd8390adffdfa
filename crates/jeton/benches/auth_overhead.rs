//! The in-process ratios of the pairs in `support`, measured interleaved:
//! rounds of a few hundred requests through one side, then as many through
//! the other, alternating which side goes first; each round gives one ratio
//! (time without auth / time with it, that is throughput with / without),
//! and the median of the rounds is reported with its quartiles. A drift of
//! the machine's speed (other tenants, clock frequency) then touches both
//! sides of a ratio alike, which criterion, measuring one side for seconds
//! and then the other, cannot promise.
//!
//! Prints one line per pair: `ratio | name | ns without | ns with | median |
//! first quartile | third quartile`. `bench/run.py` reads them.

mod support;

use std::time::{Duration, Instant};

use support::Fixture;

const ROUNDS: usize = 301;
const REQUESTS_PER_ROUND: u32 = 400;

fn main() {
    // `cargo test --benches` runs bench targets with `--bench` absent:
    // nothing to measure then.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let fixture = Fixture::new();
    for pair in [&fixture.whole_app, &fixture.bare_handler] {
        report(
            &fixture,
            pair.name,
            || fixture.read(&pair.bare, pair.origin),
            || fixture.read(&pair.guarded, pair.origin),
        );
    }
    report(
        &fixture,
        "malformed-token refusal vs GET /healthz, whole app, a new client IP each",
        || fixture.healthz(),
        || fixture.malformed(),
    );
}

fn time<F: Future<Output = ()>>(fixture: &Fixture, request: &impl Fn() -> F) -> Duration {
    fixture.runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..REQUESTS_PER_ROUND {
            request().await;
        }
        started.elapsed()
    })
}

fn report<F: Future<Output = ()>, G: Future<Output = ()>>(
    fixture: &Fixture,
    name: &str,
    baseline: impl Fn() -> F,
    measured: impl Fn() -> G,
) {
    // Warm up both sides.
    for _ in 0..5 {
        time(fixture, &baseline);
        time(fixture, &measured);
    }
    let mut ratios = Vec::with_capacity(ROUNDS);
    let (mut baseline_total, mut measured_total) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let (b, m) = if round % 2 == 0 {
            let b = time(fixture, &baseline);
            (b, time(fixture, &measured))
        } else {
            let m = time(fixture, &measured);
            (time(fixture, &baseline), m)
        };
        baseline_total += b;
        measured_total += m;
        ratios.push(b.as_secs_f64() / m.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    let requests = f64::from(REQUESTS_PER_ROUND) * ROUNDS as f64;
    println!(
        "ratio | {name} | {:.1} | {:.1} | {:.3} | {:.3} | {:.3}",
        baseline_total.as_nanos() as f64 / requests,
        measured_total.as_nanos() as f64 / requests,
        ratios[ROUNDS / 2],
        ratios[ROUNDS / 4],
        ratios[3 * ROUNDS / 4],
    );
}
