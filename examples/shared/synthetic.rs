//! A synthetic `ssh -vvv` log of a session with busy forwards, for the
//! matcher's benchmarks (examples/matcher_bench.rs and examples/bench.rs).

/// (weight, line) pairs shaped like `ssh -vvv` with busy forwards: packet and window lines
/// dominate; a few lines contain prefilter words ("forward", "listen") or a LogVerbose tag,
/// and a few are failures.
pub const LINES: &[(u32, &str)] = &[
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

pub fn synthetic_log(bytes: usize) -> (Vec<u8>, usize) {
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
