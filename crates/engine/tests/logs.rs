//! Attempts' logs in the database: written by the executor as output arrives, capped, and read
//! back through `LogTail` in bounded pieces, with no file in the home.

mod support;

use std::sync::Arc;

use baton_core::ids::TaskKey;
use baton_core::state::RunState;
use baton_engine::Options;
use baton_engine::executor::Logs;
use baton_engine::log_tail::{LogTail, Tail};
use baton_store::{MAX_READ, SqlStore, Store};

/// Prints a little over 1 MiB: more than one read, less than the cap; then its outputs.
const CHATTY: &str = "name: chatty\ntasks:\n  talk:\n    outputs: [n]\n    run: |\n      i=0\n      while [ $i -lt 1100 ]; do head -c 1023 /dev/zero | tr '\\0' a; echo; i=$((i+1)); done\n      echo n=1100 >> \"$BATON_OUTPUTS\"\n  flood:\n    run: head -c 5000000 /dev/zero | tr '\\0' b\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_logs_are_capped_and_read_back_in_bounded_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = SqlStore::open_home(dir.path()).await.expect("store");
    let logs = Logs {
        store: Arc::new(sql.log_store()),
        max_bytes_per_attempt: 2 * 1024 * 1024,
    };
    let store: Arc<dyn Store> = Arc::new(sql);
    let run = support::create(store.as_ref(), dir.path(), CHATTY, Default::default()).await;
    let mut opts = Options::new(dir.path().to_path_buf());
    opts.logs = logs.clone();
    assert_eq!(
        support::drive(&store, &run, &opts).await,
        RunState::Succeeded
    );
    assert!(
        !dir.path().join("logs").exists(),
        "no log file is written in the home"
    );
    let tasks = store.tasks(&run).await.expect("tasks");
    let talk = tasks
        .iter()
        .find(|t| t.key.as_str() == "talk")
        .expect("talk");
    assert_eq!(talk.outputs.as_ref().expect("outputs")["n"], "1100");

    let read = async |key: &str| {
        let mut tail = LogTail::open(
            Arc::clone(&store),
            Arc::clone(&logs.store),
            &run,
            &TaskKey::from_string(key),
            None,
            0,
        )
        .await
        .expect("open");
        let (mut all, mut pieces) = (Vec::new(), 0);
        loop {
            match tail.next().await.expect("read") {
                Tail::Data(piece) => {
                    assert!(piece.len() <= MAX_READ, "a piece is bounded");
                    all.extend_from_slice(&piece);
                    pieces += 1;
                }
                Tail::Idle => panic!("the attempt has ended"),
                Tail::End => return (all, pieces),
            }
        }
    };
    let (talk, pieces) = read("talk").await;
    assert_eq!(talk.len(), 1100 * 1024);
    assert!(talk.iter().all(|&b| b == b'a' || b == b'\n'));
    assert_eq!(pieces, (1100 * 1024usize).div_ceil(MAX_READ));

    let (flood, _) = read("flood").await;
    let kept = 2 * 1024 * 1024;
    assert_eq!(&flood[..kept], vec![b'b'; kept].as_slice());
    assert_eq!(
        String::from_utf8_lossy(&flood[kept..]),
        format!(
            "\n[baton: log truncated after {kept} bytes; {} more bytes dropped]\n",
            5_000_000 - kept
        )
    );
}
