//! TODO: child
