//! Opening stores by URL: servers starting at once on an empty PostgreSQL, and the errors a
//! bad setup gets (each names the URL with its password masked, and nothing is migrated).
//! `BATON_TEST_POSTGRES_URL` names a server (`.ci/postgres.sh` starts one).

#[path = "support/skip.rs"]
mod skip;

use std::time::Duration;

use baton_store::{DatabaseSettings, Error, RunFilter, SqlStore, Store};
use sqlx::Connection as _;

fn admin_url() -> Option<String> {
    let url = std::env::var("BATON_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        skip::skipped(
            "opening PostgreSQL stores by url",
            "BATON_TEST_POSTGRES_URL",
            "BATON_REQUIRE_POSTGRES",
            "eval \"$(bash .ci/postgres.sh start)\" starts one and sets it",
        );
    }
    url
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (server, _) = url.rsplit_once('/').expect("a database in the url");
    format!("{server}/{name}")
}

/// A new empty database on the server of `admin`, dropped by [`drop_database`].
async fn fresh_database(admin: &str, name: &str) -> String {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin).await.expect("admin");
    // One statement each: both refuse to run in a transaction, which several make.
    for sql in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .expect("create database");
    }
    with_database(admin, name)
}

async fn drop_database(admin: &str, name: &str) {
    let mut conn = sqlx::AnyConnection::connect(admin).await.expect("admin");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    .expect("drop database");
}

async fn migrations(url: &str) -> Vec<(i64, bool)> {
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    sqlx::query_as::<_, (i64, bool)>(
        "SELECT version, success FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&mut conn)
    .await
    .expect("migrations")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_servers_starting_at_once_on_an_empty_database_all_come_up() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin, "baton_ten_at_once").await;
    let opens = (0..10).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { SqlStore::open(&url).await })
    });
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("join").expect("every open succeeds"));
    }
    let applied = migrations(&url).await;
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations folder")
        .count();
    assert_eq!(applied.len(), files, "{applied:?}");
    assert!(applied.iter().all(|(_, ok)| *ok), "{applied:?}");
    for store in &stores {
        assert!(
            store
                .runs(&RunFilter::default())
                .await
                .expect("runs")
                .is_empty()
        );
    }
    drop(stores);
    drop_database(&admin, "baton_ten_at_once").await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_baton_is_refused_untouched() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin, "baton_newer").await;
    drop(SqlStore::open(&url).await.expect("migrate"));
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from the future', TRUE, '\\x00'::bytea, 1)",
    )
    .execute(&mut conn)
    .await
    .expect("a future migration");
    let before = migrations(&url).await;
    let e = SqlStore::open(&url).await.expect_err("newer schema");
    assert!(matches!(e, Error::NewerSchema { version: 9999, .. }), "{e}");
    assert!(e.is_setup());
    assert!(e.to_string().contains("newer baton"), "{e}");
    assert_eq!(migrations(&url).await, before);
    drop(conn);
    drop_database(&admin, "baton_newer").await;
}

#[tokio::test]
async fn an_unknown_database_or_user_is_refused_with_the_password_masked() {
    let Some(admin) = admin_url() else { return };
    let url = with_database(&admin, "baton_no_such_database");
    let e = SqlStore::open(&url).await.expect_err("unknown database");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    let with_password = admin.replacen("://baton@", "://nobody:hunter2@", 1);
    let e = SqlStore::open(&with_password)
        .await
        .expect_err("unknown user");
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    assert!(e.to_string().contains("nobody:***@"), "{e}");
}

#[tokio::test]
async fn a_refused_connection_is_said_once_the_connect_timeout_passed() {
    // A port nothing listens on: bound, then freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let settings = DatabaseSettings {
        connect_timeout: Duration::from_millis(500),
        ..DatabaseSettings::default()
    };
    let started = std::time::Instant::now();
    let e = SqlStore::open_with(&format!("postgres://u:pw@127.0.0.1:{port}/x"), &settings)
        .await
        .expect_err("nothing listens");
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.is_setup());
    let text = e.to_string();
    assert!(text.contains("connection refused"), "{text}");
    assert!(text.contains("u:***@"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn urls_of_other_databases_and_garbage_are_refused() {
    for url in ["mysql://root:pw@127.0.0.1/baton", "garbage", "sqlite://"] {
        let e = SqlStore::open(url).await.expect_err(url);
        assert!(matches!(e, Error::BadUrl { .. }), "{url}: {e}");
        assert!(!e.to_string().contains(":pw@"), "{e}");
    }
}

#[tokio::test]
async fn a_sqlite_url_that_must_exist_is_not_created() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("runs.db");
    let database = baton_store::Database {
        url: Some(format!("sqlite://{}", path.display())),
        settings: DatabaseSettings::default(),
    };
    let e = SqlStore::open_database(&database, dir.path(), false)
        .await
        .expect_err("no file");
    assert!(matches!(e, Error::NoDatabase(_)), "{e}");
    assert!(!path.exists());
    SqlStore::open_database(&database, &dir.path().join("no-home"), true)
        .await
        .expect("created");
    assert!(path.is_file());
    assert!(!dir.path().join("no-home").exists());
    SqlStore::open_database(&database, dir.path(), false)
        .await
        .expect("it exists now");
}
