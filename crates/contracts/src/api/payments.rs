//! The payments context's published request and view types.
