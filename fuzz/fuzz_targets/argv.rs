//! ssh's argv grammar (`Args::parse`) and cutting options out (`Args::without`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

use checks::{Bytes, Source};
use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes::new(data);
    let words = if src.coin() {
        // Structured: ssh-shaped words; the rest of the input picks the cuts.
        checks::gen_words(&mut src)
    } else {
        // Raw: NUL-separated words, cut choices from a fixed pattern.
        src.rest()
            .split(|&b| b == 0)
            .map(|w| OsString::from_vec(w.to_vec()))
            .collect()
    };
    checks::check_argv(words, &mut src);
});
