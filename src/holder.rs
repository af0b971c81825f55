//! TODO: holder
