//! The gateway context: what stands between the internet and the contexts.
