//! rosh-ssh: a drop-in `ssh` that drops forwards whose local port is taken.
//!
//! One module, one job; `main.rs` only maps [`app::run`] to an exit code.

pub mod app;
pub mod applied;
pub mod argv;
pub mod blame;
pub mod check;
pub mod child;
pub mod cli;
pub mod config;
pub mod connect;
pub mod describe;
pub mod effective;
pub mod error;
pub mod events;
pub mod forward;
pub mod holder;
pub mod launch;
pub mod locate;
pub mod matcher;
pub mod memo;
pub mod mux;
pub mod ownmaster;
pub mod parent;
pub mod plan;
pub mod plumbing;
pub mod policy;
pub mod probe;
pub mod procinfo;
pub mod proxy;
pub mod quote;
pub mod release;
pub mod remote_holder;
pub mod rosh;
pub mod say;
pub mod sockdiag;
pub mod supervise;
pub mod switch;
pub mod tmpdir;
