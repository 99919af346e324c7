//! web_admin
