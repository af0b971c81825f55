//! TODO: argv
