//! TODO: quote
