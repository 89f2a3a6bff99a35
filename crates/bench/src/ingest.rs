//! `ingest`: vitals samples stored per second through the HSP's own storage
//! path — many sessions handing batches to the replica's one `VitalsWriter`,
//! which gathers them into one binary COPY per write on PostgreSQL (one
//! insert for a write under 100 samples) — for several gathering sizes,
//! beside binary COPY into the store's own `vitals` (the schema's ceiling:
//! its partitions and key), into an unpartitioned table with the same key
//! (the key's share of that ceiling) and into one without keys (the
//! database's own ceiling on this machine).

use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use vitalgate_hsp::writer::VitalsWriter;
use vitalgate_hsp::HspStats;
use vitalgate_store::{PostgresStore, Store, StoredSample};

/// Simulated device sessions, each sending batches of `SESSION_BATCH`
/// samples and waiting for each to be acknowledged before the next. At most
/// `SESSIONS × SESSION_BATCH` samples are queued at once (5,120), so the
/// writer can gather its default 5,000 into one write; with 64 sessions it
/// never gathered more than 1,280, whatever it was allowed.
const SESSIONS: u64 = 256;
const SESSION_BATCH: u64 = 20;

pub(crate) struct IngestRow {
    pub(crate) name: &'static str,
    pub(crate) batch: usize,
    pub(crate) samples_per_s: f64,
}

fn sample(device_serial: u64, sequence: u64) -> StoredSample {
    StoredSample {
        device_serial,
        sequence,
        // Spread over two days: two partitions.
        measured_at_ms: 1_795_000_000_000 + sequence as i64 * 1_000,
        heart_rate_bpm: 72.0,
        spo2_percent: 97.5,
        respiratory_rate_per_min: 14.0,
        skin_temperature_c: 36.6,
        systolic_mmhg: 121.0,
        diastolic_mmhg: 79.0,
        anomaly: false,
    }
}

async fn admin_sql(server: &str, sql: &str) {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL reachable");
    let task = tokio::spawn(connection);
    client.batch_execute(sql).await.expect(sql);
    drop(client);
    let _ = task.await;
}

/// Stores `per_session` samples from each of the sessions through a writer
/// gathering up to `gather` samples per write; returns samples per second.
async fn through_the_writer(url: &str, gather: usize, per_session: u64, offset: u64) -> f64 {
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect(url, Default::default())
            .await
            .expect("store"),
    );
    let writer = VitalsWriter::start(store.clone(), Arc::new(HspStats::default()), gather);
    let start = Instant::now();
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let device = offset + session + 1;
                for first in (1..=per_session).step_by(SESSION_BATCH as usize) {
                    let samples = (first..first + SESSION_BATCH)
                        .map(|s| sample(device, s))
                        .collect();
                    writer.store(samples).await.expect("stored");
                }
            })
        })
        .collect();
    for session in sessions {
        session.await.expect("session");
    }
    let elapsed = start.elapsed().as_secs_f64();
    (SESSIONS * per_session) as f64 / elapsed
}

/// The columns of `vitals`, for the baseline tables.
const VITALS_COLUMNS: &str = "device_serial BIGINT, sequence BIGINT, measured_at_ms BIGINT,
     heart_rate_bpm REAL, spo2_percent REAL, respiratory_rate_per_min REAL,
     skin_temperature_c REAL, systolic_mmhg REAL, diastolic_mmhg REAL, anomaly BOOLEAN";

/// Binary COPY of the same rows into a new unpartitioned table `table`
/// with `key` (SQL after the columns, or nothing).
async fn copy_into_new_table(url: &str, table: &str, key: &str, rows: u64) -> f64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE TABLE {table} ({VITALS_COLUMNS}{key})"))
        .await
        .expect("table");
    let rate = copy_rows(&client, table, rows, 0).await;
    drop(client);
    let _ = task.await;
    rate
}

/// Binary COPY of the same rows into a plain table: PostgreSQL's own ceiling.
async fn plain_copy(url: &str, rows: u64) -> f64 {
    copy_into_new_table(url, "copy_baseline", "", rows).await
}

/// Binary COPY of the same rows into an unpartitioned table with `vitals`'
/// key: what the key costs on its own, without the day partitions.
async fn keyed_copy(url: &str, rows: u64) -> f64 {
    copy_into_new_table(
        url,
        "copy_keyed",
        ", PRIMARY KEY (device_serial, measured_at_ms, sequence)",
        rows,
    )
    .await
}

/// Binary COPY of the same rows, in one transaction, into the store's own
/// `vitals` (day partitions and its key, as the migrations
/// made them): the ceiling of the schema itself, whatever writes into it.
/// `offset` keeps its devices apart from those the writer stored.
async fn copy_into_vitals(url: &str, rows: u64, offset: u64) -> f64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let task = tokio::spawn(connection);
    // The day partitions the rows fall in, made as the store makes them
    // (before the clock starts: the writer's runs pay for theirs once too).
    const DAY_MS: i64 = 86_400_000;
    let days: Vec<i64> =
        (sample(1, 0).measured_at_ms / DAY_MS..=sample(1, rows).measured_at_ms / DAY_MS).collect();
    client
        .execute("SELECT vitals_ensure_partitions($1)", &[&days])
        .await
        .expect("partitions");
    let rate = copy_rows(&client, "vitals", rows, offset).await;
    drop(client);
    let _ = task.await;
    rate
}

/// COPYs `rows` samples (from 1,000 devices, numbered from `offset`) into
/// `table`; samples per second.
async fn copy_rows(client: &tokio_postgres::Client, table: &str, rows: u64, offset: u64) -> f64 {
    let types = [
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::FLOAT4,
        Type::BOOL,
    ];
    let start = Instant::now();
    let sink = client
        .copy_in(&format!("COPY {table} FROM STDIN (FORMAT binary)"))
        .await
        .expect("copy");
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..rows {
        let s = sample(offset + i % 1000 + 1, i);
        let (device, sequence) = (s.device_serial as i64, s.sequence as i64);
        writer
            .as_mut()
            .write(&[
                &device,
                &sequence,
                &s.measured_at_ms,
                &s.heart_rate_bpm,
                &s.spo2_percent,
                &s.respiratory_rate_per_min,
                &s.skin_temperature_c,
                &s.systolic_mmhg,
                &s.diastolic_mmhg,
                &s.anomaly,
            ])
            .await
            .expect("row");
    }
    writer.finish().await.expect("finish");
    rows as f64 / start.elapsed().as_secs_f64()
}

/// Stores `samples` samples through the writer at each gathering size, and
/// as many by each COPY.
pub(crate) fn run(server: &str, samples: u64) -> Vec<IngestRow> {
    let per_session = samples / SESSIONS;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let database = Database::create(server).await;
        let url = database.url.clone();
        let mut rows = Vec::new();
        for (i, gather) in [20usize, 200, 1000, 5000].into_iter().enumerate() {
            let rate = through_the_writer(&url, gather, per_session, i as u64 * 10_000).await;
            rows.push(IngestRow {
                name: "postgres-ingest",
                batch: gather,
                samples_per_s: rate,
            });
        }
        let rate = copy_into_vitals(&url, SESSIONS * per_session, 1_000_000).await;
        rows.push(IngestRow {
            name: "postgres-copy-vitals",
            batch: (SESSIONS * per_session) as usize,
            samples_per_s: rate,
        });
        let rate = keyed_copy(&url, SESSIONS * per_session).await;
        rows.push(IngestRow {
            name: "postgres-copy-keyed",
            batch: (SESSIONS * per_session) as usize,
            samples_per_s: rate,
        });
        let rate = plain_copy(&url, SESSIONS * per_session).await;
        rows.push(IngestRow {
            name: "postgres-copy-plain",
            batch: (SESSIONS * per_session) as usize,
            samples_per_s: rate,
        });
        database.drop().await;
        rows
    })
}

/// A database of the benchmark's own on the server, dropped at the end.
pub(crate) struct Database {
    server: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) async fn create(server: &str) -> Self {
        let mut bytes = [0u8; 6];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        let name = format!(
            "vg_bench_{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        admin_sql(server, &format!("CREATE DATABASE {name}")).await;
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        let url = format!("{base}/{name}");
        Self {
            server: server.to_string(),
            name,
            url,
        }
    }

    pub(crate) async fn drop(self) {
        admin_sql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

pub(crate) fn report(rows: &[IngestRow], json: bool) {
    if json {
        for row in rows {
            println!(
                "{}",
                serde_json::json!({
                    "name": row.name,
                    "batch": row.batch,
                    "samples_per_s": row.samples_per_s.round(),
                })
            );
        }
        return;
    }
    let rate_of = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map_or(f64::NAN, |r| r.samples_per_s)
    };
    let (copy, schema) = (
        rate_of("postgres-copy-plain"),
        rate_of("postgres-copy-vitals"),
    );
    println!(
        "{:<22} {:>8} {:>14} {:>10} {:>13}",
        "name", "batch", "samples/s", "/copy", "/copy-vitals"
    );
    for row in rows {
        println!(
            "{:<22} {:>8} {:>14.0} {:>10.2} {:>13.2}",
            row.name,
            row.batch,
            row.samples_per_s,
            row.samples_per_s / copy,
            row.samples_per_s / schema
        );
    }
    println!(
        "\n{SESSIONS} sessions sending {SESSION_BATCH}-sample batches to one VitalsWriter, which \
         gathers up to `batch` samples per write\n(one transaction: a sorted binary COPY into \
         the day-partitioned table and a notification; an insert with ON CONFLICT DO NOTHING \
         instead for a write under 100 samples, or again when the COPY met a stored key);\n'copy-vitals' is binary COPY of as many rows \
         into the store's own day-partitioned `vitals` (its key, its only index), in one \
         transaction;\n'copy-keyed' is binary COPY into an unpartitioned table with \
         `vitals`' key (what the key costs without the partitions);\n'copy-plain' is binary \
         COPY into an unpartitioned table without keys."
    );
}
