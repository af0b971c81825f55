//! One ssh_config line: `ConfigLine::parse` and `argv_split`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    checks::check_config_line(data);
});
