//! The shared test PostgreSQL (`BATON_TEST_POSTGRES_URL`, which `.ci/postgres.sh` starts),
//! for the store tests that run against it.
#![allow(dead_code, unreachable_pub)]

use baton_store::SqlStore;

use super::skip;

/// A store on the test PostgreSQL with its schema dropped and migrated anew, so `check`
/// starts from an empty database; `None`, reported as skipped, without one.
pub async fn fresh_store(check: &str) -> Option<SqlStore> {
    let url = url(check)?;
    let admin = SqlStore::open(&url).await.expect("connect");
    admin.reset_for_tests().await.expect("reset");
    Some(SqlStore::open(&url).await.expect("migrate"))
}

/// The test PostgreSQL's url; `None`, reported as skipped for `check`, without one.
pub fn url(check: &str) -> Option<String> {
    let url = std::env::var("BATON_TEST_POSTGRES_URL").ok();
    if url.is_none() {
        skip::skipped(
            check,
            "BATON_TEST_POSTGRES_URL",
            "BATON_REQUIRE_POSTGRES",
            "eval \"$(bash .ci/postgres.sh start)\" starts one and sets it",
        );
    }
    url
}
