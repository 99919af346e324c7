//! Integration tests: the real app on a random port, an isolated database per test (a fresh
//! SQLite file, or a fresh PostgreSQL database created and dropped per test), spoken to over HTTP.
//! One test binary for the whole workspace keeps link time down. The harness is the
//! `test-support` crate (shared with the `outages` binary).

/// Runs each named test function once per backend, each against an app spawned for it:
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        test_support::on_both_backends!(test_support::app::spawn_app => $($name),*);
    };
}

/// Store suites: each named test function runs once per backend through the module's own
/// `run(backend, test)` (which opens and migrates the context's database): `sqlite::name` and
/// `postgres::name`.
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::run(test_support::Backend::Sqlite, |db| Box::pin(super::$name(db))).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $name() { super::run(test_support::Backend::Postgres, |db| Box::pin(super::$name(db))).await } )*
        }
    };
}

/// Polls `check` every 100 ms for up to 15 s, failing with `what` when it never holds.
pub(crate) async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..150 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

mod address_book;
mod binary;
mod browser;
mod cache;
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
mod hostile_input;
mod identity_admin;
mod identity_auth;
mod identity_store;
mod inventory;
mod journeys;
mod notifications;
mod notifications_store;
mod ordering;
mod ordering_store;
mod payments;
mod peer_calls;
mod platform_http;
mod privacy;
mod rates;
mod recommendations;
mod returns;
mod search_typos;
mod store_writes;
mod stripe;
mod tls;
mod web_account;
mod web_admin;
mod web_returns;
mod web_storefront;
mod webhooks;
