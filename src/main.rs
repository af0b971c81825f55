//! The `rosh-ssh` binary: [`rosh_ssh::app::run`] mapped to how the process
//! ends. This is the only place that prints the `rosh-ssh:` prefix for a
//! fatal error.

use rosh_ssh::child::End;

fn main() {
    let end = match rosh_ssh::app::run() {
        Ok(end) => end,
        Err(err) => {
            eprintln!("rosh-ssh: {err}");
            End::Exited(255)
        }
    };
    end.mirror()
}
