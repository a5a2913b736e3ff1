//! Opening a [`SqlStore`]: the URL, the pool and its settings, migrations serialized across
//! processes, the errors a bad setup gets, and the writer connection that is replaced when
//! it breaks (a PostgreSQL restart, a dropped network).

use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection as _, Executor as _};

use super::{Backend, ChangeFeed, HOME_DATABASE, SqlStore, pools};
use crate::database::{DEFAULT_SQLITE_BUSY_TIMEOUT, Database, DatabaseSettings, Target, masked};
use crate::error::{Error, Result};

pub(super) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

mod template;

/// The advisory lock PostgreSQL migrations run under ("baton" in ASCII): ten servers
/// starting on an empty database take turns, and the nine after the first find it migrated.
const MIGRATION_LOCK: i64 = 0x62_6174_6f6e;

/// Connections found broken in this process so far. A writer checks its connection before
/// the next write whenever this moved since it last looked: a server that restarted broke
/// every connection to it, and checking on every write would cost a round trip each.
static LOSSES: AtomicU64 = AtomicU64::new(0);

/// Whether `e` means the connection is gone (so a new one may work), not that a statement
/// was refused. Counts it for the writers.
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    let lost = match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // Class 08 is "connection exception"; 57P01-57P03 are an administrator's shutdown,
        // a crash shutdown, and a server not yet accepting connections.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    };
    if lost {
        LOSSES.fetch_add(1, Ordering::Relaxed);
    }
    lost
}

/// The connection every write goes through (see [`SqlStore`]), replaced when it broke.
#[derive(Debug)]
pub(crate) struct Writer {
    pool: AnyPool,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Debug)]
struct Slot {
    conn: PoolConnection<Any>,
    /// [`LOSSES`] when `conn` was last known good.
    seen: u64,
    /// A script that opens its own transaction was sent and its end not seen (the caller
    /// was dropped while it ran): the transaction may still be open.
    in_doubt: bool,
}

/// SQLite: the table a commit's script inserts a NULL into, failing on purpose, when its
/// fence matched no row.
pub(super) const FENCE_TABLE: &str =
    "CREATE TEMP TABLE IF NOT EXISTS baton_fence (refused INTEGER NOT NULL)";

/// Whether `e` is that failure.
pub(super) fn fence_refused(e: &crate::Error) -> bool {
    matches!(e, crate::Error::Database(sqlx::Error::Database(db))
        if db.message().contains("baton_fence.refused"))
}

/// The writer connection, held until dropped.
pub(crate) struct WriterGuard<'a>(tokio::sync::MutexGuard<'a, Slot>);

impl std::ops::Deref for WriterGuard<'_> {
    type Target = PoolConnection<Any>;
    fn deref(&self) -> &Self::Target {
        &self.0.conn
    }
}

impl std::ops::DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0.conn
    }
}

impl WriterGuard<'_> {
    /// Runs `script`, which opens and ends its own transaction, and rolls back what it may
    /// have left open when it fails. A caller dropped in between leaves the connection in
    /// doubt, and the next [`Writer::lock`] rolls back first.
    pub(super) async fn run_script(
        &mut self,
        sql: String,
        args: sqlx::any::AnyArguments,
    ) -> Result<Vec<sqlx::any::AnyRow>> {
        self.0.in_doubt = true;
        let result = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
            .fetch_all(&mut *self.0.conn)
            .await;
        if result.is_err() {
            // Nothing open (the script failed before `BEGIN`, or at `COMMIT` after it
            // ended) makes this fail, harmlessly.
            let _ = self.0.conn.execute("ROLLBACK").await;
        }
        self.0.in_doubt = false;
        Ok(result?)
    }
}

impl Writer {
    async fn new(pool: &AnyPool) -> Result<Self> {
        Ok(Self {
            pool: pool.clone(),
            slot: tokio::sync::Mutex::new(Slot {
                conn: pool.acquire().await?,
                seen: LOSSES.load(Ordering::Relaxed),
                in_doubt: false,
            }),
        })
    }

    /// Waits for the writer connection. When a connection broke since it was last checked,
    /// it is pinged, and replaced by a fresh one if it is dead. Without a fresh one (the
    /// server still down) the dead one is handed out: its write fails as
    /// [`Error::ConnectionLost`], and the next one checks again.
    pub(crate) async fn lock(&self) -> WriterGuard<'_> {
        let mut slot = self.slot.lock().await;
        if slot.in_doubt {
            let _ = slot.conn.execute("ROLLBACK").await;
            slot.in_doubt = false;
        }
        let losses = LOSSES.load(Ordering::Relaxed);
        if slot.seen != losses {
            if slot.conn.ping().await.is_ok() {
                slot.seen = losses;
            } else if let Ok(fresh) = self.pool.acquire().await {
                let mut dead = std::mem::replace(&mut slot.conn, fresh);
                // Back in the pool it would be handed to a reader, and fail it too.
                dead.close_on_drop();
                slot.seen = LOSSES.load(Ordering::Relaxed);
                tracing::warn!("the database connection for writes broke; using a new one");
            }
        }
        WriterGuard(slot)
    }
}

impl SqlStore {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite://PATH` or
    /// `postgres://...`, with the default settings.
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &DatabaseSettings::default()).await
    }

    /// [`SqlStore::open`] with `settings`.
    pub async fn open_with(url: &str, settings: &DatabaseSettings) -> Result<Self> {
        install_drivers();
        if settings.max_connections == 0 {
            return Err(Error::Setting(
                "`max_connections` must be at least 1".to_owned(),
            ));
        }
        let (backend, pool) = match Target::parse(url)? {
            Target::Sqlite { .. } => (Backend::Sqlite, sqlite_pool(url, settings).await?),
            Target::Postgres => (Backend::Postgres, postgres_pool(url, settings).await?),
        };
        let writer = std::sync::Arc::new(Writer::new(&pool).await?);
        let feed = ChangeFeed::new();
        let listener =
            (backend == Backend::Postgres).then(|| std::sync::Arc::new(feed.listen(url)));
        Ok(Self {
            pool,
            writer,
            backend,
            claimed: pools::Claimed::default(),
            feed,
            _listener: listener,
            lost_acks: std::sync::Arc::default(),
            lost_reads: std::sync::Arc::default(),
            read_count: std::sync::Arc::default(),
        })
    }

    /// The store of `database`: its URL, else the SQLite file of `home`. `create` says whether
    /// a missing SQLite file (and home) may be created; a server's database is always
    /// migrated, and needs no home.
    pub async fn open_database(database: &Database, home: &Path, create: bool) -> Result<Self> {
        let Some(url) = &database.url else {
            return if create {
                Self::open_home_with(home, &database.settings).await
            } else {
                Self::open_existing_home_with(home, &database.settings).await
            };
        };
        match Target::parse(url)? {
            Target::Postgres => Self::open_with(url, &database.settings).await,
            Target::Sqlite { path } => {
                if !create && !path.is_file() {
                    return Err(Error::NoDatabase(path));
                }
                let url = if create && !url.contains("mode=") {
                    let sep = if url.contains('?') { '&' } else { '?' };
                    format!("{url}{sep}mode=rwc")
                } else {
                    url.clone()
                };
                open_sqlite_file(&path, &url, &database.settings).await
            }
        }
    }

    /// The SQLite database of a baton home directory, created with the directory if needed.
    pub async fn open_home(home: &Path) -> Result<Self> {
        Self::open_home_with(home, &DatabaseSettings::default()).await
    }

    async fn open_home_with(home: &Path, settings: &DatabaseSettings) -> Result<Self> {
        std::fs::create_dir_all(home).map_err(|e| Error::Open {
            url: home.display().to_string(),
            source: sqlx::Error::Io(e),
        })?;
        Self::open_home_dir(home, settings).await
    }

    /// The SQLite database of a home that must already exist: commands that only read (or
    /// change what is recorded) must not leave an empty home behind in the wrong directory.
    pub async fn open_existing_home(home: &Path) -> Result<Self> {
        Self::open_existing_home_with(home, &DatabaseSettings::default()).await
    }

    async fn open_existing_home_with(home: &Path, settings: &DatabaseSettings) -> Result<Self> {
        if !home.join(HOME_DATABASE).is_file() {
            return Err(Error::NoHome(home.to_path_buf()));
        }
        Self::open_home_dir(home, settings).await
    }

    async fn open_home_dir(home: &Path, settings: &DatabaseSettings) -> Result<Self> {
        let path = home.join(HOME_DATABASE);
        let url = format!("sqlite://{}?mode=rwc", path.display());
        open_sqlite_file(&path, &url, settings).await
    }
}

pub(super) fn install_drivers() {
    static DRIVERS: Once = Once::new();
    DRIVERS.call_once(sqlx::any::install_default_drivers);
}

/// Two baton processes starting on a fresh file (a run and a `baton runs` beside it) would
/// both apply the migrations; an exclusive lock on `PATH.lock` makes the second wait and then
/// find them applied.
async fn open_sqlite_file(path: &Path, url: &str, settings: &DatabaseSettings) -> Result<SqlStore> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let lock_error = |e: std::io::Error| Error::Open {
        url: lock_path.display().to_string(),
        source: sqlx::Error::Io(e),
    };
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(lock_error)?;
    let lock = tokio::task::spawn_blocking(move || {
        nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
    })
    .await
    .map_err(|e| lock_error(std::io::Error::other(e)))?
    .map_err(|(_, errno)| lock_error(std::io::Error::from(errno)))?;
    if url.contains("mode=rwc") && !path.exists() {
        template::create(path).await.map_err(|source| Error::Open {
            url: masked(url),
            source,
        })?;
    }
    let store = SqlStore::open_with(url, settings).await;
    drop(lock);
    store
}

/// Connections to one SQLite file: the writer's and one for reads.
const SQLITE_CONNECTIONS: u32 = 2;

async fn sqlite_pool(url: &str, settings: &DatabaseSettings) -> Result<AnyPool> {
    let busy = settings
        .statement_timeout
        .unwrap_or(DEFAULT_SQLITE_BUSY_TIMEOUT)
        .as_millis();
    // WAL lets readers (`baton runs` in another terminal) work while a run writes;
    // synchronous=NORMAL keeps every commit durable across a crash of the process.
    // Two connections: the writer's and one for reads. Each connection is a thread of its own
    // and compiles the whole schema on its first statement; a one-task `baton run` opened
    // four, a millisecond or more each, because its reads overlap by a hair. Reads are short
    // and take turns on one connection; in WAL mode they never wait for the writer.
    let pool = AnyPoolOptions::new()
        .max_connections(SQLITE_CONNECTIONS)
        .acquire_timeout(settings.connect_timeout.max(Duration::from_secs(1)))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // One script, one round trip to the connection's thread. Pages are read
                // through a memory map rather than a `pread` each (`mmap_size`). The
                // journal mode is the file's, set once below; sqlx's own start-up already
                // turned `foreign_keys` on.
                // The temporary table is where a commit's script stops when its fence
                // matched nothing (see `apply.rs`); it is the connection's own.
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "PRAGMA busy_timeout = {busy}; PRAGMA synchronous = NORMAL; \
                     PRAGMA mmap_size = 268435456; {FENCE_TABLE}"
                )))
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|source| Error::Open {
            url: masked(url),
            source,
        })?;
    // WAL lets readers work while a run writes. It is stored in the file, so one connection
    // setting it sets it for all; a file made from the template has it already, and then
    // this changes nothing.
    sqlx::query("PRAGMA journal_mode = WAL")
        .fetch_optional(&pool)
        .await
        .map_err(|source| Error::Open {
            url: masked(url),
            source,
        })?;
    SQLITE_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| migrate_error(url, e))?;
    Ok(pool)
}

async fn postgres_pool(url: &str, settings: &DatabaseSettings) -> Result<AnyPool> {
    let mut conn = first_connection(url, settings.connect_timeout).await?;
    let migrated = migrate_locked(&mut conn).await;
    // Closing ends the session, and with it the advisory lock whatever happened.
    let _ = conn.close().await;
    migrated.map_err(|e| migrate_error(url, e))?;
    let statement_timeout = settings.statement_timeout.map(|t| t.as_millis());
    let idle_timeout = settings.idle_transaction_timeout.as_millis().max(1);
    AnyPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.connect_timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if let Some(ms) = statement_timeout {
                    conn.execute(sqlx::AssertSqlSafe(format!("SET statement_timeout = {ms}")))
                        .await?;
                }
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "SET idle_in_transaction_session_timeout = {idle_timeout}"
                )))
                .await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| connect_error(url, e, settings.connect_timeout))
}

/// One connection of its own for the migrations, waiting up to `timeout` for a server that
/// refuses connections (not started yet, or starting up).
async fn first_connection(url: &str, timeout: Duration) -> Result<AnyConnection> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let error = match tokio::time::timeout(left, AnyConnection::connect(url)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) => e,
            Err(_) => sqlx::Error::PoolTimedOut,
        };
        let starting = match &error {
            sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| c == "57P03"),
            _ => false,
        };
        if !starting || tokio::time::Instant::now() + pause >= deadline {
            return Err(connect_error(url, error, timeout));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

async fn migrate_locked(conn: &mut AnyConnection) -> Result<(), MigrateError> {
    // `pg_advisory_lock` returns `void`, which the `Any` driver cannot decode: selected
    // through a subquery (it is called all the same).
    sqlx::query("SELECT 1 AS n FROM (SELECT pg_advisory_lock($1)) AS x")
        .bind(MIGRATION_LOCK)
        .fetch_all(&mut *conn)
        .await?;
    // `run_direct`: `run` over a `&mut` connection makes the future not `Send` (sqlx's
    // "`Acquire` is not general enough").
    let migrated = POSTGRES_MIGRATIONS.run_direct(None, conn, false).await;
    let unlocked = sqlx::query("SELECT 1 AS n FROM (SELECT pg_advisory_unlock($1)) AS x")
        .bind(MIGRATION_LOCK)
        .fetch_all(&mut *conn)
        .await;
    migrated?;
    unlocked?;
    Ok(())
}

fn migrate_error(url: &str, e: MigrateError) -> Error {
    match e {
        MigrateError::VersionMissing(version) => Error::NewerSchema {
            url: masked(url),
            version,
        },
        other => Error::Migrate(other),
    }
}

/// What a failed connection attempt tells the user: where it went (password masked), and
/// whether nothing answered or the server said no.
fn connect_error(url: &str, e: sqlx::Error, timeout: Duration) -> Error {
    let url = masked(url);
    match e {
        sqlx::Error::Configuration(detail) => Error::BadUrl {
            url,
            detail: lowercase_first(&detail.to_string()),
        },
        sqlx::Error::Io(io) => Error::Unreachable {
            url,
            detail: lowercase_first(&io.to_string()),
        },
        sqlx::Error::Tls(tls) => Error::Unreachable {
            url,
            detail: format!("tls: {tls}"),
        },
        sqlx::Error::PoolTimedOut => Error::Unreachable {
            url,
            detail: format!("no answer in {}s", timeout.as_secs_f64()),
        },
        // Class 28 is "invalid authorization", 3D000 an unknown database.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("28") || c == "3D000") =>
        {
            Error::Refused {
                url,
                detail: lowercase_first(db.message()),
            }
        }
        source => Error::Open { url, source },
    }
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_lowercase().chain(chars).collect::<String>()
    })
}
