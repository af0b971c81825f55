//! Throughput of the diagnostics matcher on a synthetic `ssh -vvv` log of about 200 MB.
//!
//! `cargo run --release --example matcher_bench [MEGABYTES]`

use rosh_ssh::matcher::{Matcher, Piece};

#[path = "shared/synthetic.rs"]
mod synthetic;
use std::time::Instant;
use synthetic::synthetic_log;

/// CPU time of this thread: unlike wall time, not inflated when other processes share the
/// machine's two cores.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (log, want_failures) = synthetic_log(mb * 1_000_000);
    let lines = log.iter().filter(|&&b| b == b'\n').count();
    println!(
        "synthetic ssh -vvv log: {:.1} MB, {lines} lines, {want_failures} failures",
        log.len() as f64 / 1e6
    );
    // 64 KiB is what one read of a full pipe returns; 4 KiB a partly filled one.
    for chunk_size in [4096, 65536, 1 << 20] {
        let (mut best, mut best_cpu) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            let mut m = Matcher::new();
            let (mut relayed, mut failures, mut lines_out) = (0usize, 0usize, 0usize);
            let start = Instant::now();
            let cpu_start = thread_cpu_secs();
            let mut out = |p: Piece<'_>| match p {
                Piece::Line { bytes, failure, .. } => {
                    relayed += bytes.len();
                    lines_out += 1;
                    failures += usize::from(failure.is_some());
                }
                Piece::Raw(b) => relayed += b.len(),
            };
            for chunk in log.chunks(chunk_size) {
                m.feed(chunk, &mut out);
            }
            m.finish(&mut out);
            let secs = start.elapsed().as_secs_f64();
            let cpu = thread_cpu_secs() - cpu_start;
            assert_eq!(relayed, log.len(), "every byte relayed");
            assert_eq!(lines_out, lines, "every line seen");
            assert_eq!(failures, want_failures, "every failure found");
            best = best.min(secs);
            best_cpu = best_cpu.min(cpu);
        }
        println!(
            "chunks of {chunk_size:>7} B: {:.2} GB/s wall, {:.2} GB/s CPU time (best of 5: {:.0} ms, {:.0} ms)",
            log.len() as f64 / best / 1e9,
            log.len() as f64 / best_cpu / 1e9,
            best * 1e3,
            best_cpu * 1e3
        );
    }
}
