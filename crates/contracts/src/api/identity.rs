//! The identity context's published request and view types.
