//! The conformance suite on the PostgreSQL backend, each check in a database
//! of its own, and what only PostgreSQL shows: replicas migrating at once,
//! the schema version rule, vitals partitions and retention, de-duplication
//! across partitions, TLS, and a differential run against SQLite.
//!
//! The server comes from `VITALGATE_TEST_DATABASE_URL` (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`); each test creates a
//! database `vg_test_…` there and drops it at the end, also when it fails.
//! Unset, the tests say they are skipped, except with `CI=true`, where they
//! fail. Set but unreachable, they fail.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;
use vitalgate_store::{
    conformance, prelude::*, DatabaseTls, PoolOptions, PostgresStore, SqliteStore, Store,
    StoreError, StoredSample,
};

const URL_VARIABLE: &str = "VITALGATE_TEST_DATABASE_URL";

/// The server to test against; `None` (after saying so) when the tests are
/// to be skipped.
fn server_url() -> Option<String> {
    match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
            "{URL_VARIABLE} is not set: with CI=true the PostgreSQL tests must run \
             (scripts/test points it at the local server)"
        ),
        _ => {
            eprintln!(
                "skipped: set {URL_VARIABLE} (e.g. postgres://postgres@127.0.0.1:5432/postgres) \
                 to run the PostgreSQL tests"
            );
            None
        }
    }
}

/// `url` naming database `name` instead of its own.
fn with_database(url: &str, name: &str) -> String {
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let query = rest[authority_end..]
                .find('?')
                .map_or("", |q| &rest[authority_end + q..]);
            format!(
                "{}{}/{name}{query}",
                &url[..scheme_end + 3],
                &rest[..authority_end]
            )
        }
        // key=value form: a later dbname wins.
        None => format!("{url} dbname={name}"),
    }
}

async fn admin_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server of {URL_VARIABLE}: {e}"));
    tokio::spawn(connection);
    client
}

/// A database of one test's own, dropped when this is (even by a panic).
struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new, empty database; `None` when the tests are skipped.
    async fn new() -> Option<Self> {
        let server = server_url()?;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "vg_test_{}_{nanos:x}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // CREATE DATABASE takes no parameters; the name is made here.
        admin_client(&server)
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let url = with_database(&server, &name);
        Some(Self { server, name, url })
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, options())
            .await
            .expect("connect to the test database")
    }

    async fn client(&self) -> tokio_postgres::Client {
        admin_client(&self.url).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop may run inside the test's runtime, or while a panic unwinds:
        // a thread of its own with a runtime of its own does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&server, NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}", self.name),
        }
    }
}

fn options() -> PoolOptions {
    PoolOptions {
        max_size: 8,
        connect_timeout: Duration::from_secs(10),
        wait_timeout: Duration::from_secs(30),
        statement_timeout: Some(Duration::from_secs(60)),
        tls: DatabaseTls::Disabled,
    }
}

// Each check in a database of its own, dropped after it.
vitalgate_store::conformance_tests!(|| async {
    let database = TestDatabase::new().await?;
    let store: Arc<dyn Store> = Arc::new(database.store().await);
    Some((store, database))
});

#[test]
fn test_urls_name_the_test_database() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
        "postgresql://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://h:1?connect_timeout=3", "x"),
        "postgres://h:1/x?connect_timeout=3"
    );
    assert_eq!(
        with_database("host=h user=u", "x"),
        "host=h user=u dbname=x"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_within_the_timeout() {
    let started = std::time::Instant::now();
    let result = PostgresStore::connect(
        "postgres://postgres@127.0.0.1:1/nothing",
        PoolOptions {
            connect_timeout: Duration::from_secs(2),
            ..PoolOptions::default()
        },
    )
    .await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The schema versions recorded, in order.
async fn versions(client: &tokio_postgres::Client) -> Vec<(i64, i64)> {
    client
        .query(
            "SELECT version, min_reader_version FROM schema_version ORDER BY version",
            &[],
        )
        .await
        .expect("schema_version")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = database.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url, options()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.expect("task").expect("every replica starts"));
    }
    let client = database.client().await;
    let recorded = versions(&client).await;
    assert_eq!(
        recorded.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        (1..=PostgresStore::SCHEMA_VERSION).collect::<Vec<_>>(),
        "each migration applied once"
    );
    // The replicas share one database.
    let mut serials = Vec::new();
    for store in &stores {
        serials.push(store.next_serial().await.expect("serial"));
    }
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), 4);
    // A replica that starts later finds nothing to do.
    drop(database.store().await);
    assert_eq!(versions(&client).await, recorded);
}

#[tokio::test]
async fn a_schema_that_needs_a_newer_build_is_refused() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    drop(database.store().await);
    let future = PostgresStore::SCHEMA_VERSION + 1;
    // A contraction released by a newer build: builds older than it must stop.
    database
        .client()
        .await
        .execute(
            "INSERT INTO schema_version (version, min_reader_version) VALUES ($1, $2)",
            &[&future, &future],
        )
        .await
        .expect("a future migration");
    let error = PostgresStore::connect(&database.url, options())
        .await
        .expect_err("refused");
    assert_eq!(
        error,
        StoreError::SchemaNeedsNewerBuild {
            schema_version: future,
            min_reader_version: future,
            supported: PostgresStore::SCHEMA_VERSION,
        }
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("schema version {future} or newer"))
            && message.contains(&format!(
                "this build knows versions up to {}",
                PostgresStore::SCHEMA_VERSION
            )),
        "{message}"
    );
}

#[tokio::test]
async fn a_newer_schema_this_build_can_still_use_is_accepted() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    drop(database.store().await);
    let future = PostgresStore::SCHEMA_VERSION + 1;
    // An expansion released by a newer build (a new column with a default):
    // it records that builds of this version may still use the schema.
    let client = database.client().await;
    client
        .batch_execute("ALTER TABLE settings ADD COLUMN updated_by TEXT NOT NULL DEFAULT ''")
        .await
        .expect("expand");
    client
        .execute(
            "INSERT INTO schema_version (version, min_reader_version) VALUES ($1, $2)",
            &[&future, &PostgresStore::SCHEMA_VERSION],
        )
        .await
        .expect("a future migration");
    let store = PostgresStore::connect(&database.url, options())
        .await
        .expect("a compatible newer schema is accepted");
    store.put_setting("k", b"v").await.expect("put");
    assert_eq!(store.setting("k").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(
        versions(&client).await.last().map(|(v, _)| *v),
        Some(future),
        "nothing applied, nothing undone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_bindings_from_two_replicas_leave_one_active_device() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let replicas = [database.store().await, database.store().await];
    let binds: Vec<_> = (1..=20u64)
        .map(|device| {
            let store = replicas[device as usize % 2].clone();
            tokio::spawn(async move { store.bind_device("pt-1", device, device).await })
        })
        .collect();
    let mut replaced = Vec::new();
    for bind in binds {
        replaced.extend(bind.await.expect("task").expect("bind"));
    }
    // Each bind but the first replaced the one device active before it.
    replaced.sort_unstable();
    assert_eq!(replaced.len(), 19, "{replaced:?}");
    replaced.dedup();
    assert_eq!(replaced.len(), 19, "each device replaced once");
    let active = replicas[0]
        .active_device("pt-1")
        .await
        .expect("active")
        .expect("one active device");
    assert!(!replaced.contains(&active));
    for device in 1..=20u64 {
        assert_eq!(
            replicas[1].device_binding(device).await.expect("binding"),
            Some(("pt-1".to_string(), device == active))
        );
    }
}

const DAY_MS: i64 = 86_400_000;
/// 2027-01-15T00:00:00Z.
const BASE_MS: i64 = 20_833 * DAY_MS;

fn sample(device: u64, sequence: u64, measured_at_ms: i64) -> StoredSample {
    StoredSample {
        device_serial: device,
        sequence,
        measured_at_ms,
        heart_rate_bpm: 60.0 + (sequence % 40) as f32,
        spo2_percent: 97.5,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 33.25,
        systolic_mmhg: 120.0,
        diastolic_mmhg: 80.0,
        anomaly: sequence.is_multiple_of(7),
    }
}

/// Samples of `devices` with sequences 1..=`per_device`, measured one every
/// two hours from BASE_MS: they span several days.
fn spread(devices: u64, per_device: u64) -> Vec<StoredSample> {
    (1..=devices)
        .flat_map(|d| {
            (1..=per_device)
                .map(move |s| sample(d, s, BASE_MS + s as i64 * 2 * 3_600_000 + d as i64))
        })
        .collect()
}

async fn partitions(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query("SELECT name FROM vitals_partitions ORDER BY day", &[])
        .await
        .expect("partitions")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn vitals_go_to_day_partitions_and_retention_drops_old_days() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let store = database.store().await;
    let client = database.client().await;
    // Three days: the 15th, 16th and 17th of January 2027.
    let batch: Vec<_> = (0..30)
        .map(|i| sample(1, i + 1, BASE_MS + (i as i64 / 10) * DAY_MS + i as i64))
        .collect();
    assert_eq!(store.store_vitals(&batch).await.expect("store"), 30);
    assert_eq!(
        partitions(&client).await,
        ["vitals_20270115", "vitals_20270116", "vitals_20270117"]
    );
    let per_partition: Vec<(String, i64)> = client
        .query(
            "SELECT tableoid::regclass::text, COUNT(*) FROM vitals GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("rows per partition")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        per_partition,
        [
            ("vitals_20270115".to_string(), 10),
            ("vitals_20270116".to_string(), 10),
            ("vitals_20270117".to_string(), 10)
        ]
    );

    // A cut-off inside the 17th drops the two days before it, whole.
    let cutoff = BASE_MS + 2 * DAY_MS + 3_600_000;
    assert_eq!(
        store.drop_vitals_before(cutoff).await.expect("retention"),
        2
    );
    assert_eq!(partitions(&client).await, ["vitals_20270117"]);
    assert_eq!(store.vitals_count(Some(1)).await.expect("count"), 10);
    assert_eq!(store.drop_vitals_before(cutoff).await.expect("again"), 0);

    // Another replica remembered the dropped days: its next insert there
    // recreates the partition instead of failing.
    let replica = database.store().await;
    assert_eq!(replica.store_vitals(&batch[..1]).await.expect("a"), 1);
    assert_eq!(store.drop_vitals_before(cutoff).await.expect("drop"), 1);
    assert_eq!(
        replica.store_vitals(&batch[..2]).await.expect("late"),
        2,
        "a late sample for a dropped day gets its partition back"
    );
    assert_eq!(
        partitions(&client).await,
        ["vitals_20270115", "vitals_20270117"]
    );
    assert_eq!(store.vitals_count(None).await.expect("count"), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_are_stored_once_across_partitions() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let replica_a = database.store().await;
    let replica_b = database.store().await;
    let all = spread(3, 60); // 180 samples over six days
    assert_eq!(
        replica_a.store_vitals(&all[..100]).await.expect("first"),
        100
    );
    // The whole batch again, reversed, through the other replica: only the
    // 80 new ones are stored.
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(replica_b.store_vitals(&reversed).await.expect("resend"), 80);
    // Everything again, in overlapping chunks from both replicas at once.
    let mut tasks = Vec::new();
    for (i, chunk) in all.chunks(25).enumerate() {
        let store = if i % 2 == 0 {
            replica_a.clone()
        } else {
            replica_b.clone()
        };
        let chunk = chunk.to_vec();
        tasks.push(tokio::spawn(
            async move { store.store_vitals(&chunk).await },
        ));
        let store = replica_b.clone();
        let chunk = all
            .iter()
            .rev()
            .skip(i * 7)
            .take(30)
            .cloned()
            .collect::<Vec<_>>();
        tasks.push(tokio::spawn(
            async move { store.store_vitals(&chunk).await },
        ));
    }
    for task in tasks {
        assert_eq!(task.await.expect("task").expect("store"), 0, "resends only");
    }
    // A batch that repeats its own samples stores each once.
    let fresh: Vec<_> = (61..=64)
        .map(|s| sample(1, s, BASE_MS + s as i64 * 7_200_000))
        .collect();
    let doubled: Vec<_> = fresh.iter().chain(&fresh).cloned().collect();
    assert_eq!(replica_a.store_vitals(&doubled).await.expect("doubled"), 4);

    assert_eq!(replica_a.vitals_count(None).await.expect("count"), 184);
    let client = database.client().await;
    let row = client
        .query_one(
            "SELECT COUNT(*), COUNT(DISTINCT (device_serial, sequence)),
                    COUNT(DISTINCT tableoid)
             FROM vitals",
            &[],
        )
        .await
        .expect("counts");
    let (rows, keys, partitions): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(rows, 184);
    assert_eq!(keys, 184, "each (device, sequence) once");
    assert!(partitions >= 5, "the samples span {partitions} partitions");
    assert_eq!(
        replica_b.latest_vitals(1, 2).await.expect("latest"),
        vec![fresh[3].clone(), fresh[2].clone()]
    );
}

/// The documented limit of the de-duplication: the measurement time is part
/// of the key, so the same (device, sequence) with another time is another
/// sample. Devices resend samples unchanged, so this does not happen.
#[tokio::test]
async fn a_resend_with_another_time_is_not_caught() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let store = database.store().await;
    assert_eq!(
        store
            .store_vitals(&[sample(1, 1, BASE_MS)])
            .await
            .expect("store"),
        1
    );
    assert_eq!(
        store
            .store_vitals(&[sample(1, 1, BASE_MS + 1)])
            .await
            .expect("store"),
        1
    );
    assert_eq!(store.vitals_count(Some(1)).await.expect("count"), 2);
}

#[tokio::test]
async fn refused_samples_refuse_the_whole_batch() {
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let store = database.store().await;
    let mut nan = sample(1, 2, BASE_MS);
    nan.spo2_percent = f32::NAN;
    let batch = [sample(1, 1, BASE_MS), nan];
    assert!(matches!(
        store.store_vitals(&batch).await,
        Err(StoreError::Backend(_))
    ));
    let too_big = [sample(1, 1, BASE_MS), sample(u64::MAX, 1, BASE_MS)];
    assert_eq!(
        store.store_vitals(&too_big).await,
        Err(StoreError::Backend(format!(
            "value {} out of range",
            u64::MAX
        )))
    );
    assert_eq!(store.vitals_count(None).await.expect("count"), 0);
    // The ends of the time axis have partitions too.
    let ends = [
        sample(1, 1, i64::MIN),
        sample(1, 2, i64::MAX),
        sample(1, 3, -1),
    ];
    assert_eq!(store.store_vitals(&ends).await.expect("ends"), 3);
    // Newest first by measurement time.
    assert_eq!(
        store.latest_vitals(1, 3).await.expect("latest"),
        vec![ends[1].clone(), ends[2].clone(), ends[0].clone()]
    );
}

#[tokio::test]
async fn answers_like_sqlite() {
    for seed in 1..=3 {
        let Some(database) = TestDatabase::new().await else {
            return;
        };
        let postgres = database.store().await;
        let sqlite = SqliteStore::in_memory().expect("open");
        common::differential(
            &postgres,
            &sqlite,
            seed,
            4000,
            common::Compare {
                loose_backend_errors: true,
                resend_same_time: true,
            },
        )
        .await;
    }
}

/// Debian's PostgreSQL serves TLS with its "snakeoil" certificate, made for
/// `localhost`. Where the server does, the store connects over TLS trusting
/// that certificate, and refuses a server it cannot verify.
#[tokio::test]
async fn tls_to_the_database_verifies_the_server() {
    const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let Some(database) = TestDatabase::new().await else {
        return;
    };
    let client = database.client().await;
    let ssl: String = client
        .query_one("SHOW ssl", &[])
        .await
        .expect("show ssl")
        .get(0);
    let config: tokio_postgres::Config = database.url.parse().expect("url");
    let local = config.get_hosts().iter().all(|h| {
        matches!(h, tokio_postgres::config::Host::Tcp(h) if h == "127.0.0.1" || h == "localhost")
    });
    if ssl != "on" || !local || std::fs::metadata(SNAKEOIL).is_err() {
        eprintln!("skipped: the server does not serve TLS with {SNAKEOIL} on this machine");
        return;
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("postgres");
    let url = |host: &str| {
        format!(
            "postgres://{user}@{host}:{port}/{}?hostaddr=127.0.0.1",
            database.name
        )
    };
    let trusted = PoolOptions {
        tls: DatabaseTls::Required {
            ca_file: Some(SNAKEOIL.into()),
        },
        ..options()
    };
    let store = PostgresStore::connect(&url("localhost"), trusted.clone())
        .await
        .expect("TLS with the server's certificate trusted");
    store.put_setting("tls", b"yes").await.expect("put");
    let encrypted: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
             WHERE ssl AND datname = $1",
            &[&database.name],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted >= 1, "the store's connections use TLS");
    drop(store);

    // Not trusted (another authority), or not the name the certificate
    // names: refused, never a plaintext fallback.
    let other_ca = {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let other_ca_file = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca_file, other_ca).expect("write");
    let untrusted = PoolOptions {
        tls: DatabaseTls::Required {
            ca_file: Some(other_ca_file),
        },
        ..options()
    };
    let refused = PostgresStore::connect(&url("localhost"), untrusted).await;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
    let refused = PostgresStore::connect(&url("127.0.0.1"), trusted).await;
    assert!(
        matches!(refused, Err(StoreError::Backend(_))),
        "{refused:?}"
    );
}

/// A development store moves to PostgreSQL through a backup (text becomes
/// BYTEA, 0 and 1 become booleans, identity columns go on past the restored
/// ids, vitals get their day partitions), a PostgreSQL backup restores into
/// another database, and back into SQLite; every table compares equal.
#[tokio::test]
async fn backups_move_between_sqlite_and_postgresql() {
    let Some(first) = TestDatabase::new().await else {
        return;
    };
    let sqlite = SqliteStore::in_memory().expect("open");
    conformance::fill_every_table(&sqlite).await;
    let postgres = first.store().await;
    conformance::backup_restores_every_table(&sqlite, &postgres).await;
    let partitions: i64 = first
        .client()
        .await
        .query_one("SELECT COUNT(*) FROM vitals_partitions", &[])
        .await
        .expect("partitions")
        .get(0);
    assert_eq!(partitions, 4, "the restored samples span four days");

    // PostgreSQL to PostgreSQL, and PostgreSQL to SQLite.
    let (Some(second), Some(third)) = (TestDatabase::new().await, TestDatabase::new().await) else {
        return;
    };
    let source = second.store().await;
    conformance::fill_every_table(&source).await;
    let file = conformance::backup_restores_every_table(&source, &third.store().await).await;
    let back = SqliteStore::in_memory().expect("open");
    vitalgate_store::backup::restore_backup(&back, std::io::Cursor::new(file))
        .await
        .expect("restore into SQLite");
    let again = SqliteStore::in_memory().expect("open");
    conformance::fill_every_table(&again).await;
    // What came back is what was filled in (the PostgreSQL source has gone
    // on by a serial since, as the check above asked it to).
    conformance::assert_same_contents(&back, &again).await;
}

/// The refusals on PostgreSQL: a refused restore leaves every table empty
/// (the one transaction, day partitions included, is rolled back).
#[tokio::test]
async fn a_damaged_backup_or_a_busy_database_is_refused() {
    let (Some(target), Some(busy)) = (TestDatabase::new().await, TestDatabase::new().await) else {
        return;
    };
    let source = SqliteStore::in_memory().expect("open");
    conformance::fill_every_table(&source).await;
    let target_store = target.store().await;
    conformance::restore_refuses_and_writes_nothing(&source, &target_store, &busy.store().await)
        .await;
}
