//! What the suite needs from the machine, checked in one place: under
//! `CI=true` anything missing fails here by name (`.ci/run` installs it),
//! rather than some test skipping in silence further on.
mod lab;

use std::path::Path;

/// Tools the integration tests run, by absolute path as they use them
/// (the OpenSSH ones are those under test: tests/lab/mod.rs).
const TOOLS: &[&str] = &[
    "/usr/bin/ssh-agent",
    "/usr/bin/tmux",
    "/usr/bin/screen",
    "/usr/bin/python3",
    "/usr/bin/shellcheck",
    "/usr/bin/setpriv",
    "/usr/bin/dash",
];

#[test]
fn the_machine_has_what_the_suite_needs() {
    let openssh = [lab::sshd(), lab::ssh(), lab::keygen()];
    let mut missing: Vec<String> = openssh
        .iter()
        .chain(TOOLS)
        .filter(|t| !Path::new(t).exists())
        .map(|t| t.to_string())
        .collect();
    // Root-only tests (looking up as another user, reading configs as
    // nobody): CI runs as root.
    if !nix::unistd::geteuid().is_root() {
        missing.push("root".into());
    }
    let v6_declared = std::env::var_os(lab::NO_IPV6_VAR).is_some_and(|v| v == "1");
    if std::net::TcpListener::bind("[::1]:0").is_err() && !v6_declared {
        missing.push("IPv6 on loopback".into());
    }
    if missing.is_empty() {
        return;
    }
    assert!(
        !lab::ci(),
        "missing under CI: {}; .ci/run must provide them",
        missing.join(", ")
    );
    eprintln!(
        "note: missing {}; the tests that need them skip",
        missing.join(", ")
    );
}
