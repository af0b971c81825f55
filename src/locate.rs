//! TODO: locate
