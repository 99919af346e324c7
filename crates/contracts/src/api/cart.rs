//! The cart context's published request and view types.
