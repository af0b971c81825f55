//! The `rosh-ssh` binary: [`rosh_ssh::app::run`] mapped to an exit code.
//! This is the only place that prints the `rosh-ssh:` prefix for a fatal error.

fn main() {
    let code = match rosh_ssh::app::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("rosh-ssh: {err}");
            255
        }
    };
    std::process::exit(code);
}
