//! web_account
