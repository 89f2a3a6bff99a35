//! Attempt counters in PostgreSQL, on their own pool that commits without
//! waiting for the disk: the common case one upsert, rows always taken in
//! (scope, key) order.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::api::Attempts;
use crate::{AttemptLimit, AttemptState, StoreError, StoreResult};

use super::sql::{
    backend, column, column_u64, execute, is_deadlock, prepared, query, query_one, query_opt,
    to_sql,
};
use super::PostgresStore;

#[async_trait]
impl Attempts for PostgresStore {
    async fn begin_attempt(
        &self,
        scope: &str,
        key: &str,
        limit: &AttemptLimit,
        now: u64,
    ) -> StoreResult<u32> {
        let (scope, key) = (scope.as_bytes(), key.as_bytes());
        let mut client = self.counters_client().await?;
        // Below the free failures (and the disabling count) an attempt is
        // always admitted: one atomic upsert counts it. Every login passes
        // here two or three times, and a source address's row is shared by
        // all its users, so the common case must not hold a row lock across
        // round trips.
        let free = limit
            .free_failures
            .min(limit.disable_after.unwrap_or(u32::MAX));
        // (A time beyond SQL's range takes the general path, which says so
        // only if the attempt is admitted.)
        if let Ok(now_sql) = to_sql(now) {
            let counted = query_opt(
                &client,
                "INSERT INTO attempts (scope, key, failures, last_failure) VALUES ($1, $2, 1, $3)
                 ON CONFLICT (scope, key) DO UPDATE
                     SET failures = attempts.failures + 1, last_failure = $3
                     WHERE attempts.failures < $4
                 RETURNING failures",
                &[&scope, &key, &now_sql, &i64::from(free)],
            )
            .await?;
            if let Some(row) = counted {
                let failures: i64 = column(&row, 0)?;
                return Ok(u32::try_from(failures).unwrap_or(u32::MAX));
            }
        }
        let tx = client.transaction().await.map_err(backend)?;
        // A row to lock, even for the first attempt (rolled back with the
        // transaction when the attempt is refused).
        execute(
            &tx,
            "INSERT INTO attempts (scope, key, failures, last_failure) VALUES ($1, $2, 0, 0)
             ON CONFLICT (scope, key) DO NOTHING",
            &[&scope, &key],
        )
        .await?;
        let row = query_one(
            &tx,
            "SELECT failures, last_failure FROM attempts WHERE scope = $1 AND key = $2 FOR UPDATE",
            &[&scope, &key],
        )
        .await?;
        let state = attempt_state(&row)?;
        let next = limit.admit(state, now)?;
        execute(
            &tx,
            "UPDATE attempts SET failures = $3, last_failure = $4 WHERE scope = $1 AND key = $2",
            &[
                &scope,
                &key,
                &i64::from(next.failures),
                &to_sql(next.last_failure)?,
            ],
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(next.failures)
    }

    async fn begin_attempts(
        &self,
        attempts: &[(&str, &str, &AttemptLimit)],
        now: u64,
    ) -> StoreResult<Vec<u32>> {
        retrying_deadlocks(|| count_attempts(self, attempts, now)).await
    }

    async fn clear_attempts(&self, scope: &str, key: &str) -> StoreResult<()> {
        let client = self.counters_client().await?;
        execute(
            &client,
            "DELETE FROM attempts WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn forgive_attempt(&self, scope: &str, key: &str) -> StoreResult<()> {
        let client = self.counters_client().await?;
        execute(
            &client,
            "UPDATE attempts SET failures = GREATEST(failures - 1, 0)
             WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn settle_attempts(
        &self,
        clear: &[(&str, &str)],
        forgive: &[(&str, &str)],
    ) -> StoreResult<()> {
        let columns = |pairs: &[(&str, &str)]| -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
            pairs
                .iter()
                .map(|(scope, key)| (scope.as_bytes().to_vec(), key.as_bytes().to_vec()))
                .unzip()
        };
        let ((clear_scopes, clear_keys), (forgive_scopes, forgive_keys)) =
            (columns(clear), columns(forgive));
        let client = self.counters_client().await?;
        // Two statements, each its own transaction, so that no lock is held
        // from one to the other: a sign-in that settles its source's counter
        // while another counts a guess on the same account cannot wait on it
        // in a circle. (Not one step, then; a crash between the two leaves a
        // count that is higher, never lower.) Forgiven first, so that a pair
        // in both lists ends cleared. Within each statement the rows are
        // locked in (scope, key) order first, as counting takes them: a
        // statement that locked them in the order its join happened to
        // produce could hold one row a counting sign-in waits for while
        // waiting for one that sign-in holds.
        if !forgive.is_empty() {
            let params: [&(dyn ToSql + Sync); 2] = [&forgive_scopes, &forgive_keys];
            retrying_deadlocks(|| {
                execute(
                    &client,
                    "UPDATE attempts a SET failures = GREATEST(a.failures - 1, 0)
                     FROM (SELECT l.scope, l.key FROM attempts l
                           JOIN (SELECT DISTINCT scope, key
                                 FROM unnest($1::bytea[], $2::bytea[]) AS f(scope, key)) f
                               ON l.scope = f.scope AND l.key = f.key
                           ORDER BY l.scope, l.key FOR UPDATE OF l) f
                     WHERE a.scope = f.scope AND a.key = f.key",
                    &params,
                )
            })
            .await?;
        }
        if !clear.is_empty() {
            let params: [&(dyn ToSql + Sync); 2] = [&clear_scopes, &clear_keys];
            retrying_deadlocks(|| {
                execute(
                    &client,
                    "DELETE FROM attempts a
                     USING (SELECT l.scope, l.key FROM attempts l
                            JOIN unnest($1::bytea[], $2::bytea[]) AS c(scope, key)
                                ON l.scope = c.scope AND l.key = c.key
                            ORDER BY l.scope, l.key FOR UPDATE OF l) c
                     WHERE a.scope = c.scope AND a.key = c.key",
                    &params,
                )
            })
            .await?;
        }
        Ok(())
    }

    async fn attempts(&self, scope: &str, key: &str) -> StoreResult<AttemptState> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT failures, last_failure FROM attempts WHERE scope = $1 AND key = $2",
            &[&scope.as_bytes(), &key.as_bytes()],
        )
        .await?
        .map(|row| attempt_state(&row))
        .transpose()
        .map(Option::unwrap_or_default)
    }
}

/// [`Attempts::begin_attempts`] on `store`, tried once: the common case's
/// one statement, else one transaction.
async fn count_attempts(
    store: &PostgresStore,
    attempts: &[(&str, &str, &AttemptLimit)],
    now: u64,
) -> StoreResult<Vec<u32>> {
    if let [(scope, key, limit)] = attempts {
        // One counter: `begin_attempt`'s single upsert does it.
        return Ok(vec![store.begin_attempt(scope, key, limit, now).await?]);
    }
    let scopes: Vec<&[u8]> = attempts.iter().map(|(s, _, _)| s.as_bytes()).collect();
    let keys: Vec<&[u8]> = attempts.iter().map(|(_, k, _)| k.as_bytes()).collect();
    let position = |scope: &[u8], key: &[u8]| {
        scopes
            .iter()
            .zip(&keys)
            .position(|(s, k)| *s == scope && *k == key)
    };
    let mut client = store.counters_client().await?;
    // The common case, as in `begin_attempt`: every counter below its
    // free failures, all counted by one statement. A counter already at
    // its free failures (as the statement's snapshot sees it) stops the
    // whole insert. One that reaches them meanwhile (another replica's
    // attempt) is left alone by the upsert's own check, which sees the
    // row's newest value; the statement then fails on purpose (a
    // division by zero, SQLSTATE 22012), so what it counted beside it
    // rolls back with it. Either way the general path decides. Rows are
    // taken in (scope, key) order here and there, so two sign-ins never
    // wait on each other in a circle.
    let free: Vec<i64> = attempts
        .iter()
        .map(|(_, _, limit)| {
            i64::from(
                limit
                    .free_failures
                    .min(limit.disable_after.unwrap_or(u32::MAX)),
            )
        })
        .collect();
    let distinct = (0..attempts.len()).all(|i| position(scopes[i], keys[i]) == Some(i));
    if let (true, Ok(now_sql)) = (distinct, to_sql(now)) {
        let statement = prepared(
            &client,
            "WITH input AS (
                 SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[]) AS i(scope, key, free)),
             counted AS (
                 INSERT INTO attempts (scope, key, failures, last_failure)
                 SELECT scope, key, 1, $4 FROM input
                 WHERE NOT EXISTS (
                     SELECT 1 FROM attempts a JOIN input i ON a.scope = i.scope AND a.key = i.key
                     WHERE a.failures >= i.free)
                 ORDER BY scope, key
                 ON CONFLICT (scope, key) DO UPDATE
                     SET failures = attempts.failures + 1, last_failure = $4
                     WHERE attempts.failures < (
                         SELECT free FROM input i
                         WHERE i.scope = attempts.scope AND i.key = attempts.key)
                 RETURNING scope, key, failures)
             SELECT scope, key, failures,
                    1 / CASE WHEN (SELECT count(*) FROM counted) = cardinality($1::bytea[])
                             THEN 1 ELSE 0 END
             FROM counted",
        )
        .await?;
        match client
            .query(&statement, &[&scopes, &keys, &free, &now_sql])
            .await
        {
            Ok(rows) if rows.len() == attempts.len() => {
                let mut counted = vec![0; attempts.len()];
                for row in &rows {
                    let (scope, key): (&[u8], &[u8]) = (column(row, 0)?, column(row, 1)?);
                    if let Some(i) = position(scope, key) {
                        counted[i] = u32::try_from(column_u64(row, 2)?).unwrap_or(u32::MAX);
                    }
                }
                return Ok(counted);
            }
            // Nothing counted: the general path decides.
            Ok(_) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DIVISION_BY_ZERO) => {}
            Err(e) => return Err(backend(e)),
        }
    }
    // The general path: every row locked (made first if need be), each
    // attempt admitted in order, all written, one commit; a refusal
    // drops the transaction and with it everything.
    let tx = client.transaction().await.map_err(backend)?;
    execute(
        &tx,
        "INSERT INTO attempts (scope, key, failures, last_failure)
         SELECT scope, key, 0, 0 FROM unnest($1::bytea[], $2::bytea[]) AS i(scope, key)
         ORDER BY scope, key
         ON CONFLICT (scope, key) DO NOTHING",
        &[&scopes, &keys],
    )
    .await?;
    let rows = query(
        &tx,
        "SELECT a.scope, a.key, a.failures, a.last_failure FROM attempts a
         JOIN unnest($1::bytea[], $2::bytea[]) AS i(scope, key)
             ON a.scope = i.scope AND a.key = i.key
         ORDER BY a.scope, a.key FOR UPDATE OF a",
        &[&scopes, &keys],
    )
    .await?;
    let mut states = vec![AttemptState::default(); attempts.len()];
    for row in &rows {
        let (scope, key): (&[u8], &[u8]) = (column(row, 0)?, column(row, 1)?);
        if let Some(i) = position(scope, key) {
            states[i] = AttemptState {
                failures: u32::try_from(column_u64(row, 2)?).unwrap_or(u32::MAX),
                last_failure: column_u64(row, 3)?,
            };
        }
    }
    let mut counted = Vec::with_capacity(attempts.len());
    for (i, (scope, key, limit)) in attempts.iter().enumerate() {
        // A pair named twice counts twice, the second on the first.
        let slot = position(scope.as_bytes(), key.as_bytes()).unwrap_or(i);
        let next = limit.admit(states[slot], now)?;
        states[slot] = next;
        execute(
            &tx,
            "UPDATE attempts SET failures = $3, last_failure = $4 WHERE scope = $1 AND key = $2",
            &[
                &scope.as_bytes(),
                &key.as_bytes(),
                &i64::from(next.failures),
                &to_sql(next.last_failure)?,
            ],
        )
        .await?;
        counted.push(next.failures);
    }
    tx.commit().await.map_err(backend)?;
    Ok(counted)
}

/// How many times in all a counter's statement or transaction is tried
/// when PostgreSQL aborts it to break a deadlock.
const DEADLOCK_TRIES: usize = 3;

/// Runs `work` (one statement, or one transaction begun and committed
/// inside it) again when PostgreSQL aborted it to break a deadlock
/// (SQLSTATE 40P01), as PostgreSQL's manual asks of applications: the
/// aborted work was rolled back whole, so trying it again counts nothing
/// twice. The counters take their rows in (scope, key) order everywhere,
/// yet the conformance test's sixteen concurrent sign-ins on one account
/// and one address met a deadlock once in CI; its cycle was not found.
async fn retrying_deadlocks<T, F, W>(mut work: W) -> StoreResult<T>
where
    W: FnMut() -> F,
    F: std::future::Future<Output = StoreResult<T>>,
{
    let mut tried = 1;
    loop {
        match work().await {
            Err(error) if tried < DEADLOCK_TRIES && is_deadlock(&error) => {
                tracing::debug!(
                    tried,
                    "attempt counters: PostgreSQL broke a deadlock; trying again"
                );
                tried += 1;
            }
            done => return done,
        }
    }
}

fn attempt_state(row: &Row) -> StoreResult<AttemptState> {
    let failures = column_u64(row, 0)?;
    Ok(AttemptState {
        failures: u32::try_from(failures).map_err(|_| {
            StoreError::Backend(format!("stored failure count {failures} out of range"))
        })?,
        last_failure: column_u64(row, 1)?,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn deadlock() -> StoreError {
        StoreError::Backend("PostgreSQL 40P01: deadlock detected".into())
    }

    #[tokio::test]
    async fn a_deadlock_is_tried_again_and_nothing_else_is() {
        // Aborted twice, then through: the third try's answer.
        let tries = Cell::new(0);
        let answer = retrying_deadlocks(|| {
            tries.set(tries.get() + 1);
            let now = tries.get();
            async move {
                if now < 3 {
                    Err(deadlock())
                } else {
                    Ok(now)
                }
            }
        })
        .await;
        assert_eq!(answer.expect("through on the third try"), 3);

        // Aborted every time: the deadlock, after the last try.
        tries.set(0);
        let answer: StoreResult<()> = retrying_deadlocks(|| {
            tries.set(tries.get() + 1);
            async { Err(deadlock()) }
        })
        .await;
        assert!(is_deadlock(&answer.expect_err("still deadlocked")));
        assert_eq!(tries.get(), DEADLOCK_TRIES);

        // Any other failure is answered at once.
        let others: [fn() -> StoreError; 3] = [
            || StoreError::Backend("PostgreSQL 40001: could not serialize access".into()),
            || StoreError::Backend("PostgreSQL: connection closed (40P01)".into()),
            || StoreError::Conflict("PostgreSQL 40P01: not the database's".into()),
        ];
        for other in others {
            tries.set(0);
            let answer: StoreResult<()> = retrying_deadlocks(|| {
                tries.set(tries.get() + 1);
                let error = other();
                async move { Err(error) }
            })
            .await;
            assert!(answer.is_err());
            assert_eq!(tries.get(), 1, "{}", other());
        }
    }
}
