//! rosh-ssh: a drop-in `ssh` that drops forwards whose local port is taken.
//!
//! One module, one job; `main.rs` only maps [`app::run`] to an exit code.

pub mod app;
pub mod argv;
pub mod blame;
pub mod check;
pub mod child;
pub mod cli;
pub mod config;
pub mod describe;
pub mod effective;
pub mod error;
pub mod forward;
pub mod holder;
pub mod launch;
pub mod locate;
pub mod matcher;
pub mod ownmaster;
pub mod plan;
pub mod probe;
pub mod proxy;
pub mod quote;
pub mod release;
pub mod supervise;
pub mod tmpdir;
