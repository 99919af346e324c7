//! Wiring of Emporium's contexts into one HTTP application. The binary (`main.rs`) and the
//! integration tests build the app the same way, so tests exercise what ships.

pub mod api_doc;
pub mod app;
pub mod cli;
pub mod dev;
pub mod gateway_mode;
