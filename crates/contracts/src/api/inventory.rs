//! The inventory context's published request and view types.
