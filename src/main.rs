//! The `rosh-ssh` binary: [`rosh_ssh::app::run`] mapped to how the process
//! ends. This is the only place that prints the `rosh-ssh:` prefix for a
//! fatal error.
//!
//! rosh-ssh sits in front of every ssh call, so the time from its exec to
//! ssh's exec is a cost paid each time (issue 6, bench/RESULTS.md). Two
//! things make that shorter without weakening the binary (it stays PIE with
//! full RELRO, like ssh):
//! - `main` is the C entry point (`#![no_main]`): std's runtime setup is
//!   skipped. Of it, the part that matters is redone below (SIGPIPE ignored,
//!   closed standard descriptors opened on /dev/null); the part that is left
//!   out is the stack-overflow message, whose setup reads /proc/self/maps
//!   and maps an alternate signal stack on every start. A stack overflow
//!   still kills the process with SIGSEGV. Arguments and the environment
//!   come from glibc as before (std reads them in an `.init_array` hook),
//!   and on macOS from `_NSGetArgv`. Elsewhere (FreeBSD, musl) std learns
//!   them only from its own runtime start, so there `main` stays std's.
//! - libgcc's unwinder is linked in statically (`gcc_eh`): with
//!   `panic = "abort"` it is only there for backtraces, and loading
//!   libgcc_s.so.1 at run time (mapping, relocation, its CPU-feature
//!   constructor) cost about 75 us a start; linked in, it adds ~10 KB.
#![cfg_attr(
    any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple"),
    no_main
)]

use rosh_ssh::child::End;

// Ahead of std's `-lgcc_s` on the link line, so the linker takes the
// unwinder from here and drops libgcc_s.so.1 from the needed libraries
// (`--as-needed`); tests/core.rs checks that it is not loaded.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[link(name = "gcc_eh", kind = "static")]
unsafe extern "C" {}

/// The process entry, called by glibc's (or macOS's) start code.
#[cfg(any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple"))]
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    runtime_setup();
    run()
}

/// std's entry, where std's runtime is what hands it argv (see above).
#[cfg(not(any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple")))]
fn main() {
    run();
}

fn run() -> ! {
    let end = match rosh_ssh::app::run() {
        Ok(end) => end,
        Err(err) => {
            eprintln!("rosh-ssh: {err}");
            End::Exited(255)
        }
    };
    end.mirror()
}

/// What std's runtime does before `main` and rosh-ssh relies on: a closed
/// stdin, stdout or stderr is opened on /dev/null (so no file rosh-ssh opens
/// lands on descriptor 2 and receives its messages), and SIGPIPE is ignored
/// (a write to a closed pipe is an error to handle, not a death). ssh gets
/// SIGPIPE back at its default, as std's `Command` always did.
#[cfg(any(all(target_os = "linux", target_env = "gnu"), target_vendor = "apple"))]
fn runtime_setup() {
    // SAFETY: poll on a local array, open of a constant path and signal with
    // SIG_IGN are plain libc calls with no memory handed over.
    unsafe {
        let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        });
        // Darwin's poll sets no POLLNVAL for a closed fd (std skips poll
        // there for that reason): fcntl answers instead.
        let polled = if cfg!(target_vendor = "apple") {
            -1
        } else {
            libc::poll(fds.as_mut_ptr(), 3, 0)
        };
        for p in &fds {
            let closed = if polled < 0 {
                libc::fcntl(p.fd, libc::F_GETFD) == -1
            } else {
                p.revents & libc::POLLNVAL != 0
            };
            // Ascending order: the lowest free descriptor is this one.
            if closed && libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) != p.fd {
                // Nothing sane is left to do: std aborts here too.
                libc::abort();
            }
        }
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
