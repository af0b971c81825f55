//! TODO: tmpdir
