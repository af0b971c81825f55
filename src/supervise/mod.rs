//! Supervising a live connection: reading ssh's log while it runs (a
//! forward that fails after connecting costs that forward and one line) and
//! putting dropped forwards back into the same connection once their port
//! is free. `launch.rs` builds ssh's words; this is what watches the run.

pub mod log;
pub mod restore;
