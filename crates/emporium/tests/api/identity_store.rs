//! The storage contract of identity, run against every backend (SQLite and PostgreSQL): one
//! suite, so the two implementations cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use identity::domain::{LoginThrottle, Role, TokenPurpose, UserId, UserStatus};
use identity::store::sql::SqlStore;
use identity::store::{
    IdentityStore, LoginAttempt, LoginFailures, LoginOutcome, NewRefreshToken, Session, StoreError, User, UserFilter,
};
use platform::db::Db;
use time::OffsetDateTime;
use uuid::Uuid;

use test_support::{Backend, TestDb};

store_suite!(
    duplicate_emails_are_reported_as_such,
    optimistic_updates_detect_stale_versions,
    only_one_of_two_concurrent_rotations_wins,
    one_time_tokens_are_single_use_and_expire,
    login_failures_count_within_the_window_and_reset_on_success,
    concurrent_reservations_respect_the_limit,
    user_listing_filters_and_pages,
    timestamps_round_trip_exactly_in_utc,
    the_address_book_keeps_one_default_whatever_runs_at_once,
);

type Test = fn(Arc<dyn IdentityStore>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

async fn run(backend: Backend, test: Test) {
    let Some(t) = TestDb::open(backend, "identity").await else {
        return;
    };
    let db = &t.db;
    identity::migrate(db).await.expect("migrate");
    let store: Arc<dyn IdentityStore> = match db {
        Db::Sqlite(p) => Arc::new(SqlStore::<sqlx::Sqlite>::new(p.clone())),
        Db::Postgres(p) => Arc::new(SqlStore::<sqlx::Postgres>::new(p.clone())),
    };
    test(store).await;
    db.close().await;
}

/// Microsecond precision: what both backends store.
fn now() -> OffsetDateTime {
    let t = platform::clock::now();
    t.replace_nanosecond(t.nanosecond() / 1000 * 1000).expect("valid")
}

fn user(email: &str) -> User {
    let t = now();
    User {
        id: UserId::new(),
        email: email.into(),
        name: "Someone".into(),
        password_hash: "$argon2id$fake".into(),
        role: Role::Customer,
        status: UserStatus::Active,
        email_verified_at: None,
        created_at: t,
        updated_at: t,
        version: 1,
    }
}

async fn with_session(store: &dyn IdentityStore, email: &str) -> (User, Session, [u8; 32]) {
    let u = user(email);
    store.insert_user(&u, &[]).await.expect("insert");
    let t = now();
    let session = Session {
        id: Uuid::now_v7(),
        user_id: u.id,
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
        created_at: t,
        last_seen_at: t,
        expires_at: t + Duration::from_secs(3600),
        revoked_at: None,
    };
    let digest = [1u8; 32];
    let token = NewRefreshToken {
        digest,
        issued_at: t,
        expires_at: t + Duration::from_secs(600),
    };
    store.create_session(&session, &token).await.expect("session");
    (u, session, digest)
}

async fn duplicate_emails_are_reported_as_such(store: Arc<dyn IdentityStore>) {
    store.insert_user(&user("one@example.com"), &[]).await.expect("first");
    let err = store
        .insert_user(&user("one@example.com"), &[])
        .await
        .expect_err("second");
    assert!(matches!(err, StoreError::DuplicateEmail), "{err:?}");
}

async fn optimistic_updates_detect_stale_versions(store: Arc<dyn IdentityStore>) {
    let u = user("v@example.com");
    store.insert_user(&u, &[]).await.expect("insert");
    let updated = store
        .update_name(u.id, "New", Some(1), now(), &[])
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    let err = store
        .update_name(u.id, "Stale", Some(1), now(), &[])
        .await
        .expect_err("stale");
    assert!(matches!(err, StoreError::VersionMismatch), "{err:?}");
    let err = store
        .update_name(UserId::new(), "Ghost", Some(1), now(), &[])
        .await
        .expect_err("missing");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn only_one_of_two_concurrent_rotations_wins(store: Arc<dyn IdentityStore>) {
    let (_, session, old) = with_session(store.as_ref(), "race@example.com").await;
    let attempts = (0..8u8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let t = now();
            let new = NewRefreshToken {
                digest: [i + 10; 32],
                issued_at: t,
                expires_at: t + Duration::from_secs(600),
            };
            store
                .rotate_refresh_token(&old, &new, session.id, t)
                .await
                .expect("rotate")
        })
    });
    let results = futures::future::join_all(attempts).await;
    let winners = results.into_iter().filter(|r| *r.as_ref().expect("joined")).count();
    assert_eq!(winners, 1);
    let stored = store.refresh_token(&old).await.expect("read").expect("exists");
    assert!(stored.used_at.is_some());
}

async fn one_time_tokens_are_single_use_and_expire(store: Arc<dyn IdentityStore>) {
    let u = user("ott@example.com");
    store.insert_user(&u, &[]).await.expect("insert");
    let t = now();
    let live = [2u8; 32];
    let stale = [3u8; 32];
    store
        .insert_one_time_token(
            &live,
            u.id,
            TokenPurpose::PasswordReset,
            t,
            t + Duration::from_secs(60),
            &[],
        )
        .await
        .expect("insert");
    store
        .insert_one_time_token(
            &stale,
            u.id,
            TokenPurpose::PasswordReset,
            t,
            t + Duration::from_millis(1),
            &[],
        )
        .await
        .expect("insert");
    // Wrong purpose: refused, and not consumed.
    assert_eq!(
        store
            .consume_one_time_token(&live, TokenPurpose::EmailVerification, t)
            .await
            .expect("consume"),
        None
    );
    assert_eq!(
        store
            .consume_one_time_token(&live, TokenPurpose::PasswordReset, t)
            .await
            .expect("consume"),
        Some(u.id)
    );
    assert_eq!(
        store
            .consume_one_time_token(&live, TokenPurpose::PasswordReset, t)
            .await
            .expect("consume"),
        None
    );
    let later = t + Duration::from_secs(1);
    assert_eq!(
        store
            .consume_one_time_token(&stale, TokenPurpose::PasswordReset, later)
            .await
            .expect("consume"),
        None
    );
}

/// Reserves an attempt at `at` and settles it with `outcome` (`None`: left pending).
async fn attempt(
    store: &Arc<dyn IdentityStore>,
    email: &str,
    ip: &str,
    at: OffsetDateTime,
    outcome: Option<LoginOutcome>,
) -> LoginAttempt {
    let a = LoginAttempt {
        id: Uuid::now_v7(),
        email: email.into(),
        ip: ip.into(),
        at,
    };
    let never = |_: LoginFailures| None;
    let refused = store
        .reserve_login_attempt(&a, at - Duration::from_secs(86_400), &never)
        .await
        .expect("reserve");
    assert_eq!(refused, None);
    if let Some(outcome) = outcome {
        store.settle_login_attempt(a.id, outcome).await.expect("settle");
    }
    a
}

/// What a reservation at `t` sees, without recording anything.
async fn seen(store: &Arc<dyn IdentityStore>, email: &str, ip: &str, t: OffsetDateTime) -> LoginFailures {
    let probe = LoginAttempt {
        id: Uuid::now_v7(),
        email: email.into(),
        ip: ip.into(),
        at: t,
    };
    let counts = std::sync::Mutex::new(None);
    let capture = |s: LoginFailures| {
        *counts.lock().expect("lock") = Some(s);
        Some(LoginThrottle {
            wait: Duration::from_secs(1),
            limit: 1,
            window: Duration::from_secs(900),
        })
    };
    let refused = store
        .reserve_login_attempt(&probe, t - Duration::from_secs(900), &capture)
        .await
        .expect("reserve");
    assert_eq!(
        refused.map(|r| r.wait),
        Some(Duration::from_secs(1)),
        "the rule's wait is returned"
    );
    counts.into_inner().expect("lock").expect("the rule saw the counts")
}

async fn login_failures_count_within_the_window_and_reset_on_success(store: Arc<dyn IdentityStore>) {
    let t = now();
    attempt(
        &store,
        "a@x.io",
        "10.0.0.1",
        t - Duration::from_secs(2000),
        Some(LoginOutcome::Failed),
    )
    .await;
    for s in [300, 200] {
        attempt(
            &store,
            "a@x.io",
            "10.0.0.1",
            t - Duration::from_secs(s),
            Some(LoginOutcome::Failed),
        )
        .await;
    }
    // Pending attempts (password still being checked) count like failures.
    attempt(&store, "a@x.io", "10.0.0.1", t - Duration::from_secs(100), None).await;
    attempt(
        &store,
        "b@x.io",
        "10.0.0.1",
        t - Duration::from_secs(50),
        Some(LoginOutcome::Failed),
    )
    .await;
    // Refused (right password, account may not log in) neither counts nor clears.
    attempt(
        &store,
        "a@x.io",
        "10.0.0.1",
        t - Duration::from_secs(40),
        Some(LoginOutcome::Refused),
    )
    .await;
    let s = seen(&store, "a@x.io", "10.0.0.1", t).await;
    assert_eq!(s.account.failures, 3);
    assert_eq!(s.account.oldest, Some(t - Duration::from_secs(300)));
    assert_eq!(s.ip.failures, 4);

    attempt(
        &store,
        "a@x.io",
        "10.0.0.1",
        t - Duration::from_secs(150),
        Some(LoginOutcome::Succeeded),
    )
    .await;
    let s = seen(&store, "a@x.io", "10.0.0.1", t).await;
    assert_eq!(s.account.failures, 1, "only the attempt after the success counts");
    assert_eq!(s.ip.failures, 4, "the address count only ages out");

    let pruned = store
        .prune_login_attempts(t - Duration::from_secs(900))
        .await
        .expect("prune");
    assert_eq!(pruned, 1, "only the attempt outside the window is forgotten");
}

/// Reservations made at the same moment see each other: with a limit of 5, exactly 5 of 40
/// concurrent attempts are recorded (counting first and recording after would let them all in).
async fn concurrent_reservations_respect_the_limit(store: Arc<dyn IdentityStore>) {
    let t = now();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let a = LoginAttempt {
                id: Uuid::now_v7(),
                email: "victim@x.io".into(),
                ip: format!("10.1.0.{i}"),
                at: t,
            };
            let rule = |s: LoginFailures| {
                (s.account.failures >= 5).then_some(LoginThrottle {
                    wait: Duration::from_secs(60),
                    limit: 5,
                    window: Duration::from_secs(900),
                })
            };
            store
                .reserve_login_attempt(&a, t - Duration::from_secs(900), &rule)
                .await
                .expect("reserve")
        }));
    }
    let mut admitted = 0;
    for task in tasks {
        if task.await.expect("task").is_none() {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}

async fn user_listing_filters_and_pages(store: Arc<dyn IdentityStore>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut u = user(&format!("list{i}@example.com"));
        if i == 4 {
            u.role = Role::Admin;
        }
        ids.push(u.id.0);
        store.insert_user(&u, &[]).await.expect("insert");
    }
    store
        .insert_user(&user("under_score@example.com"), &[])
        .await
        .expect("insert");
    let page = store.list_users(&UserFilter::default(), None, 3).await.expect("list");
    assert_eq!(page.iter().map(|u| u.id.0).collect::<Vec<_>>(), ids[..3]);
    let rest = store
        .list_users(&UserFilter::default(), Some(ids[2]), 10)
        .await
        .expect("list");
    assert_eq!(rest.len(), 3);
    let admins = UserFilter {
        role: Some(Role::Admin),
        ..Default::default()
    };
    assert_eq!(store.list_users(&admins, None, 10).await.expect("list").len(), 1);
    let literal = UserFilter {
        email_contains: Some("_".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list_users(&literal, None, 10).await.expect("list").len(),
        1,
        "_ is not a wildcard"
    );
    let disabled = UserFilter {
        status: Some(UserStatus::Disabled),
        ..Default::default()
    };
    assert!(store.list_users(&disabled, None, 10).await.expect("list").is_empty());
    // Many accounts by id in one query (the admin console names an order list's customers).
    let chosen = UserFilter {
        ids: Some(vec![ids[4], ids[1], uuid::Uuid::now_v7()]),
        ..Default::default()
    };
    let found: Vec<_> = store
        .list_users(&chosen, None, 10)
        .await
        .expect("list")
        .iter()
        .map(|u| u.id.0)
        .collect();
    assert_eq!(found, vec![ids[1], ids[4]]);
    let none = UserFilter {
        ids: Some(Vec::new()),
        ..Default::default()
    };
    assert!(store.list_users(&none, None, 10).await.expect("list").is_empty());
}

async fn timestamps_round_trip_exactly_in_utc(store: Arc<dyn IdentityStore>) {
    let mut u = user("time@example.com");
    u.email_verified_at = Some(now());
    store.insert_user(&u, &[]).await.expect("insert");
    let back = store.user_by_id(u.id).await.expect("read").expect("exists");
    assert_eq!(back, u);
}

fn saved(user: &User, line1: &str, is_default: bool) -> identity::store::AddressRecord {
    let raw = contracts::api::ordering::RawAddress {
        name: "Ada".into(),
        line1: line1.into(),
        city: "Berlin".into(),
        postal_code: "10115".into(),
        country: "DE".into(),
        ..Default::default()
    };
    identity::store::AddressRecord {
        id: Uuid::now_v7(),
        user_id: user.id,
        label: None,
        address: contracts::kernel::PostalAddress::parse(&raw, |_| Ok(())).expect("valid"),
        is_default,
        created_at: now(),
        updated_at: now(),
    }
}

async fn the_address_book_keeps_one_default_whatever_runs_at_once(store: Arc<dyn IdentityStore>) {
    let u = user("book@example.com");
    store.insert_user(&u, &[]).await.expect("insert");
    let first = store.add_address(&saved(&u, "1 Way", false), 20).await.expect("first");
    assert!(first.is_default, "the first address is the default");
    let mut ids = vec![first.id];
    for i in 2..=8 {
        ids.push(
            store
                .add_address(&saved(&u, &format!("{i} Way"), false), 20)
                .await
                .expect("add")
                .id,
        );
    }
    // Every address claims the mark at once, and more arrive claiming it too.
    let owner = u.id;
    let claims = ids.iter().map(|id| {
        let (store, id) = (store.clone(), *id);
        tokio::spawn(async move { store.make_default_address(owner, id, now()).await.map(|_| ()) })
    });
    let arrivals = (0..4).map(|i| {
        let (store, record) = (store.clone(), saved(&u, &format!("new {i}"), true));
        tokio::spawn(async move { store.add_address(&record, 20).await.map(|_| ()) })
    });
    for task in claims.chain(arrivals).collect::<Vec<_>>() {
        task.await.expect("task").expect("every change succeeds");
    }
    let book = store.addresses(u.id).await.expect("book");
    assert_eq!(book.len(), 12);
    assert_eq!(book.iter().filter(|a| a.is_default).count(), 1, "{book:?}");
    assert!(book[0].is_default, "the default is listed first");

    // Removing the default passes the mark on; the limit holds (erasure empties it: tests/api/privacy.rs).
    store.remove_address(u.id, book[0].id, now()).await.expect("remove");
    let book = store.addresses(u.id).await.expect("book");
    assert_eq!(book.iter().filter(|a| a.is_default).count(), 1);
    assert!(matches!(
        store.add_address(&saved(&u, "x", false), 11).await,
        Err(StoreError::AddressBookFull(11))
    ));
    let stranger = user("stranger@example.com");
    store.insert_user(&stranger, &[]).await.expect("insert");
    assert!(matches!(
        store.make_default_address(stranger.id, book[0].id, now()).await,
        Err(StoreError::NotFound)
    ));
}
