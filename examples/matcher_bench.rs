//! Throughput of the diagnostics matcher on a synthetic `ssh -vvv` log of about 200 MB.
//!
//! `cargo run --release --example matcher_bench [MEGABYTES]`

use rosh_ssh::matcher::{Matcher, Piece};
use std::time::Instant;

/// (weight, line) pairs shaped like `ssh -vvv` with busy forwards: packet and window lines
/// dominate; a few lines contain prefilter words ("forward", "listen") or a LogVerbose tag,
/// and a few are failures.
const LINES: &[(u32, &str)] = &[
    (300, "debug3: receive packet: type 94\r\n"),
    (300, "debug3: send packet: type 94\r\n"),
    (120, "debug2: channel 0: rcvd adjust 65536\r\n"),
    (
        120,
        "debug2: channel 2: window 1998848 sent adjust 98304\r\n",
    ),
    (40, "debug3: send packet: type 93\r\n"),
    (20, "debug2: fd 7 setting TCP_NODELAY\r\n"),
    (20, "debug1: channel 3: new [direct-tcpip]\r\n"),
    (20, "debug2: channel 3: read<=0 rfd 9 len 0\r\n"),
    (
        20,
        "debug2: channel 3: chan_shutdown_read (i0 o0 sock 9 wfd 9 efd -1 [closed])\r\n",
    ),
    (20, "debug3: channel 3: will not send data after close\r\n"),
    (20, "debug2: channel 3: send close\r\n"),
    (20, "debug3: channel 3: is dead\r\n"),
    (20, "debug2: channel 3: garbage collecting\r\n"),
    (
        10,
        "debug1: Connection to port 3131 forwarding to localhost port 3131 requested.\r\n",
    ),
    (
        10,
        "debug1: channel 3: free: direct-tcpip: listening port 3131 for localhost port 3131, connect from 127.0.0.1 port 45678 to 127.0.0.1 port 3131, nchannels 4\r\n",
    ),
    (
        2,
        "debug1: ssh.c:ssh_confirm_remote_forward():1801 (pid=4242): remote forward success for: listen 8082, connect localhost:22\r\n",
    ),
    (1, "bind [127.0.0.1]:3131: Address already in use\r\n"),
    (
        1,
        "Warning: remote port forwarding failed for listen port 8082\r\n",
    ),
];

fn synthetic_log(bytes: usize) -> (Vec<u8>, usize) {
    let total: u32 = LINES.iter().map(|l| l.0).sum();
    let mut log = Vec::with_capacity(bytes + 256);
    let mut failures = 0;
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    while log.len() < bytes {
        // xorshift: deterministic, no dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut pick = (state % u64::from(total)) as u32;
        for (weight, line) in LINES {
            if pick < *weight {
                log.extend_from_slice(line.as_bytes());
                if line.starts_with("bind") || line.starts_with("Warning") {
                    failures += 1;
                }
                break;
            }
            pick -= weight;
        }
    }
    (log, failures)
}

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
