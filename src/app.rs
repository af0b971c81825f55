//! The decisions: fast path, probe, drop, run.

/// Runs rosh-ssh and returns the exit status to end with.
pub fn run() -> Result<i32, String> {
    // TEMPORARY (proxy branch only): dispatch `--proxy` until the lead wires it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--proxy") {
        return crate::proxy::run(&args[1..]).map_err(|e| e.to_string());
    }
    Err("not implemented".into())
}
