//! Forward specs: `parse_arg` (-L/-R/-D), `parse_keyword` and `Forward::from_ssh_g`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use checks::{Bytes, Source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes::new(data);
    let letter = *src.pick(b"LRD");
    match src.below(4) {
        0 => checks::check_forward_spec(letter, &checks::gen_spec(&mut src)),
        1 => checks::check_ssh_g_line(&checks::gen_ssh_g_line(&mut src)),
        2 => checks::check_ssh_g_line(src.rest()),
        _ => checks::check_forward_spec(letter, src.rest()),
    }
});
