//! The catalog context's published request and view types.
