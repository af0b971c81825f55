//! The lab itself: plain ssh reaches the loopback sshd and runs a command.
mod lab;

#[test]
fn plain_ssh_reaches_the_lab() {
    let Some(lab) = lab::Lab::start() else { return };
    let out = lab.ssh(&["echo", "hello"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello\n",
        "stderr: {}\nsshd: {}",
        String::from_utf8_lossy(&out.stderr),
        lab.sshd_log()
    );
    assert!(out.status.success());
}
