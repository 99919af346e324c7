//! Integration tests: the real app on a random port, an isolated database per test (a fresh
//! SQLite file, or a fresh PostgreSQL database created and dropped per test), spoken to over HTTP.
//! One test binary for the whole workspace keeps link time down.

mod binary;
mod browser;
mod cart;
mod catalog;
mod checkout_money;
mod console;
mod crash;
mod dev_trace;
mod docs;
mod events;
mod faults;
mod gateway;
mod helpers;
mod hostile_input;
mod identity_admin;
mod identity_auth;
mod identity_store;
mod inventory;
mod journeys;
mod notifications;
mod ordering;
mod payments;
mod platform_http;
mod returns;
mod shop;
#[path = "../../../../tests/support/smtp_sink.rs"]
#[allow(dead_code)]
mod smtp;
mod tls;
mod web_account;
mod web_admin;
mod web_returns;
mod web_storefront;
