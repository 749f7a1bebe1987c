//! Group-commit tests (SQLite, and PostgreSQL where configured).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;

use super::*;
use crate::core::config::{DatabaseUrl, SqliteSync};

fn insert(c: &mut DbConn, id: i64) -> Result<(), ApiError> {
    c.batch_execute(&format!("INSERT INTO t (id) VALUES ({id})"))?;
    Ok(())
}

/// A job that counts its runs and inserts `id`; `fail` makes it fail
/// after the insert, `nested` adds a nested transaction that fails and
/// whose failure the job survives.
fn job(
    runs: &Arc<AtomicUsize>,
    id: i64,
    fail: bool,
    nested: Option<i64>,
) -> impl FnMut(&mut DbConn) -> Result<i64, ApiError> + Send + 'static {
    let runs = runs.clone();
    move |c| {
        runs.fetch_add(1, Ordering::SeqCst);
        insert(c, id)?;
        if let Some(inner) = nested {
            let r = crate::storage::transaction(c, |c| -> Result<(), ApiError> {
                insert(c, inner)?;
                Err(ApiError::invalid_input("nested failure"))
            });
            assert!(r.is_err());
        }
        if fail {
            return Err(ApiError::invalid_input("job failure"));
        }
        Ok(id)
    }
}

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    id: i64,
}

pub(crate) fn ids_in(pool: &Pool, table: &str) -> Vec<i64> {
    let q = format!("SELECT id FROM {table} ORDER BY id");
    let rows: Vec<Id> = match &mut *pool.get().unwrap() {
        DbConn::Sqlite(c) => diesel::sql_query(q).load(c),
        DbConn::Pg(c) => diesel::sql_query(q).load(c),
    }
    .unwrap();
    rows.into_iter().map(|r| r.id).collect()
}

fn sqlite_pool(name: &str) -> (Pool, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "tandem-group-{name}-{}-{}",
        std::process::id(),
        crate::core::ids::now_ms()
    ));
    let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
    let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
    pool.get()
        .unwrap()
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .unwrap();
    (pool, dir)
}

/// Occupies the committer so that jobs started right after queue up and
/// form one batch behind it.
fn blocker(
    commit: &GroupCommit,
    ms: u64,
) -> impl std::future::Future<Output = Result<i64, ApiError>> + '_ {
    commit.run(move |_c| {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(0_i64)
    })
}

/// Issue 21, item 2. On PostgreSQL a failed statement aborts the whole
/// transaction, and `COMMIT` then quietly rolls back. A job that swallows
/// such a failure must not make the batch look committed: the job that
/// swallowed fails, the others are stored.
#[actix_web::test]
async fn a_swallowed_failure_on_postgres_never_passes_for_a_commit() {
    let Some(db) = crate::storage::test_pg::scratch("group") else {
        return;
    };
    let url = DatabaseUrl::Postgres(db.url.clone());
    let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
    pool.get()
        .unwrap()
        .batch_execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        .unwrap();
    let commit = GroupCommit::start(
        pool.clone(),
        1,
        crate::core::metrics::QueueGauge::new(MAX_QUEUED),
    );
    let swallow = |c: &mut DbConn| -> Result<i64, ApiError> {
        insert(c, 2)?;
        // Fails (job 1 inserted id 1); the error is dropped on the floor.
        let _ = insert(c, 1);
        Ok(2)
    };
    let (_, first, second) = futures_util::join!(
        blocker(&commit, 300),
        commit.run(|c| insert(c, 1).map(|()| 1_i64)),
        commit.run(swallow),
    );
    let stored = ids_in(&pool, "t");
    drop(pool);
    drop(db);
    assert_eq!(first.unwrap(), 1);
    assert!(second.is_err(), "the job that swallowed a failure failed");
    assert_eq!(stored, vec![1]);
}

/// Issue 21, item 5. A job that could not start in time is refused and
/// never runs; a job that started is awaited to its outcome however long
/// it takes, never answered as failed while it goes on to commit.
#[actix_web::test]
async fn jobs_are_refused_only_before_they_start() {
    let (pool, dir) = sqlite_pool("deadline");
    let mut commit = GroupCommit::start(
        pool.clone(),
        1,
        crate::core::metrics::QueueGauge::new(MAX_QUEUED),
    );
    commit.max_queue_wait = Duration::from_millis(200);
    let late = Arc::new(AtomicUsize::new(0));
    let late_runs = late.clone();
    let (_, refused, slow) = futures_util::join!(
        blocker(&commit, 500),
        commit.run(move |c| {
            late_runs.fetch_add(1, Ordering::SeqCst);
            insert(c, 1).map(|()| 1_i64)
        }),
        async {
            // Starts once the blocker is done, then takes longer than the
            // queue wait: still answered with its outcome.
            tokio::time::sleep(Duration::from_millis(600)).await;
            commit
                .run(|c| {
                    std::thread::sleep(Duration::from_millis(400));
                    insert(c, 2).map(|()| 2_i64)
                })
                .await
        },
    );
    assert!(refused.is_err());
    assert_eq!(late.load(Ordering::SeqCst), 0, "a refused job never runs");
    assert_eq!(slow.unwrap(), 2);
    assert_eq!(ids_in(&pool, "t"), vec![2]);
    drop(pool);
    let _ = std::fs::remove_dir_all(dir);
}

#[actix_web::test]
async fn a_failed_job_rolls_back_alone_after_the_batch_runs_again_with_savepoints() {
    let dir = std::env::temp_dir().join(format!("tandem-group-{}", crate::core::ids::now_ms()));
    let url = DatabaseUrl::Sqlite(dir.join("t.db").to_string_lossy().into_owned());
    let pool = crate::storage::open_pool(&url, 2, SqliteSync::Full).unwrap();
    pool.get()
        .unwrap()
        .batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .unwrap();
    let commit = GroupCommit::start(
        pool.clone(),
        1,
        crate::core::metrics::QueueGauge::new(MAX_QUEUED),
    );
    // Occupies the committer so that the jobs below queue up and form
    // one batch behind it.
    let blocker = commit.run(|_c| {
        std::thread::sleep(Duration::from_millis(300));
        Ok(0_i64)
    });
    let counters: Vec<Arc<AtomicUsize>> = (0..5).map(|_| Arc::default()).collect();
    let (a, b, c, d, e) = futures_util::join!(
        blocker,
        commit.run(job(&counters[0], 1, false, None)),
        commit.run(job(&counters[1], 2, true, None)),
        commit.run(job(&counters[2], 3, false, Some(4))),
        commit.run(job(&counters[3], 5, false, None)),
    );
    assert_eq!(a.unwrap(), 0);
    assert_eq!(b.unwrap(), 1);
    assert!(c.is_err());
    assert_eq!(d.unwrap(), 3);
    assert_eq!(e.unwrap(), 5);
    // The first job ran in the savepoint-free attempt, which stopped at
    // the failing job, and again in the careful run.
    assert_eq!(counters[0].load(Ordering::SeqCst), 2);
    assert_eq!(counters[1].load(Ordering::SeqCst), 2);
    assert_eq!(counters[3].load(Ordering::SeqCst), 1);

    // A batch where only a nested transaction fails also runs again.
    let f = commit.run(job(&counters[4], 6, false, Some(7))).await;
    assert_eq!(f.unwrap(), 6);
    assert_eq!(counters[4].load(Ordering::SeqCst), 2);

    assert_eq!(ids_in(&pool, "t"), vec![1, 3, 5, 6]);
    drop(pool);
    let _ = std::fs::remove_dir_all(dir);
}

/// Partitions: jobs of one key run one at a time and in the order they were
/// submitted; jobs of different keys run in several transactions at once.
#[actix_web::test]
async fn one_key_runs_in_order_and_keys_run_side_by_side() {
    use std::sync::Mutex;
    let Some(db) = crate::storage::test_pg::scratch("partitions") else {
        return;
    };
    let url = DatabaseUrl::Postgres(db.url.clone());
    let pool = crate::storage::open_pool(&url, 6, SqliteSync::Full).unwrap();
    let commit = GroupCommit::start(
        pool.clone(),
        4,
        crate::core::metrics::QueueGauge::new(MAX_QUEUED),
    );
    const KEYS: i64 = 8;
    let active: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let overlap = Arc::new(AtomicUsize::new(0));
    let most_at_once = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let order: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); KEYS as usize]));
    let jobs = (0..160_i64).map(|n| {
        let key = n % KEYS;
        let (active, overlap, most, running, order) = (
            active.clone(),
            overlap.clone(),
            most_at_once.clone(),
            running.clone(),
            order.clone(),
        );
        commit.run_for(key * 1_000_003, move |_c| {
            let k = usize::try_from(key).unwrap();
            if active[k].fetch_add(1, Ordering::SeqCst) > 0 {
                overlap.fetch_add(1, Ordering::SeqCst);
            }
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            active[k].fetch_sub(1, Ordering::SeqCst);
            order.lock().unwrap()[k].push(n);
            Ok(n)
        })
    });
    let done = futures_util::future::join_all(jobs).await;
    for d in &done {
        assert!(d.is_ok(), "{:?}", d.as_ref().err().map(ApiError::detail));
    }
    assert_eq!(
        overlap.load(Ordering::SeqCst),
        0,
        "one key, one job at a time"
    );
    for (k, seen) in order.lock().unwrap().iter().enumerate() {
        let submitted: Vec<i64> = (0..160).filter(|n| n % KEYS == k as i64).collect();
        // A batch may run twice only when a job fails; none does here.
        assert_eq!(seen, &submitted, "key {k} ran in submission order");
    }
    assert!(
        most_at_once.load(Ordering::SeqCst) > 1,
        "different keys ran in several transactions at once"
    );
    drop(pool);
    drop(db);
}
