//! The vitals feed across replicas: a connection of its own LISTENs for the
//! devices every replica's inserts announce.

use std::time::Duration;

use tokio::sync::broadcast;
use tokio_postgres::NoTls;

use super::sql::describe;

/// Follows `vitalgate_vitals` notifications on a connection of its own and
/// passes the device serials on to `feed`; reconnects after a failure, and
/// ends once the store is gone.
pub(super) fn spawn_vitals_listener(
    config: tokio_postgres::Config,
    tls: Option<rustls::ClientConfig>,
    feed: std::sync::Weak<broadcast::Sender<crate::StoredDevices>>,
) {
    tokio::spawn(async move {
        while feed.upgrade().is_some() {
            let result = match &tls {
                Some(tls) => {
                    listen(
                        &config,
                        tokio_postgres_rustls::MakeRustlsConnect::new(tls.clone()),
                        &feed,
                    )
                    .await
                }
                None => listen(&config, NoTls, &feed).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %describe(&e), "the vitals feed lost its connection; reconnecting");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen<T>(
    config: &tokio_postgres::Config,
    tls: T,
    feed: &std::sync::Weak<broadcast::Sender<crate::StoredDevices>>,
) -> Result<(), tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (messages, mut incoming) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures_util::StreamExt::next(&mut stream).await {
            match message {
                Ok(message) => {
                    if messages.send(message).is_err() {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute("LISTEN vitalgate_vitals").await?;
    loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let Some(sender) = feed.upgrade() else { break };
                    let mut devices: Vec<u64> =
                        n.payload().split(',').filter_map(|s| s.parse().ok()).collect();
                    devices.sort_unstable();
                    devices.dedup();
                    if !devices.is_empty() {
                        let _ = sender.send(devices.into());
                    }
                }
                Some(_) => {}
                None => break,
            },
            // Notice a dropped store even when nothing is stored.
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                if feed.upgrade().is_none() {
                    break;
                }
            }
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
