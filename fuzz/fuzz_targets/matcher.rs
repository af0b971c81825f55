//! The diagnostics matcher: every byte relayed once, verdicts independent of
//! the chunking, memory bounded by the cap (counted by the allocator).
#![no_main]

#[path = "../checks.rs"]
mod checks;

use checks::{Bytes, Source};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: checks::alloc::Counting = checks::alloc::Counting;

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes::new(data);
    let cap = *src.pick(&[0, 1, 2, 7, 40, 64, 200, 4096, rosh_ssh::matcher::DEFAULT_CAP]);
    let chunks: Vec<usize> = (0..src.below(4)).map(|_| src.below(300)).collect();
    let log = if src.coin() {
        checks::gen_log(&mut src)
    } else {
        src.rest().to_vec()
    };
    checks::check_matcher(&log, &chunks, cap);
});
