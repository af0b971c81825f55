//! `config::rewrite` on generated config trees (Includes, loops, blocks, forward lines).
#![no_main]

#[path = "../checks.rs"]
mod checks;

use checks::Bytes;
use libfuzzer_sys::fuzz_target;
use rosh_ssh::tmpdir::PrivateDir;

fuzz_target!(|data: &[u8]| {
    let (Ok(tree), Ok(out)) = (PrivateDir::new(), PrivateDir::new()) else {
        return;
    };
    // The real ssh judges the copy where it is installed (slower, but the oracle).
    let ssh = std::path::Path::new("/usr/bin/ssh");
    let ssh = ssh.exists().then_some(ssh);
    checks::check_rewrite(&mut Bytes::new(data), tree.path(), out.path(), ssh);
});
