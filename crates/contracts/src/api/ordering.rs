//! The ordering context's published request and view types.
