//! `vitalgate ttp`, `vitalgate hsp`, `vitalgate device`: each service alone.
//! Settings come from `config::resolve`; this file reads what they name and
//! runs the service.

use std::sync::Arc;

use tokio::sync::watch;
use vitalgate_device::{Device, DeviceConfig};
use vitalgate_hsp::{Hsp, HspConfig};
use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName};
use vitalgate_ttp::{Ttp, TtpConfig};

use crate::config::flags::{DeviceFlags, HspFlags, TtpFlags};
use crate::config::{resolve, Env};
use crate::{connect_ttp, init_logging, load, open_store, ops, shutdown_signal, CliResult};

pub(crate) async fn ttp(flags: TtpFlags, env: &Env) -> CliResult {
    let file = load::config_file(resolve::config_path(flags.config.as_ref(), env)?.as_ref())?.ttp;
    let settings = resolve::ttp(&flags, &file, env)?;
    let ops_settings = resolve::ops(
        &flags.ops,
        file.ops_listen.clone(),
        env,
        resolve::DEFAULT_TTP_OPS,
    )?;
    // Held until the process ends: a second TTP on this directory refuses.
    let _data_dir = crate::data_lock::lock(&settings.data_dir)?;
    let readiness = ops::ServiceReadiness::store_only();
    let telemetry = ops::start("vitalgate-ttp", &ops_settings, readiness.clone()).await?;
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = open_store(
        settings.database_url.as_deref(),
        &settings.pool,
        &settings.data_dir,
    )
    .await?;
    readiness.store_opened(store.clone());
    let mut config = TtpConfig::new(settings.data_dir.clone());
    config.serving_hsps = settings.serving_hsps.clone();
    if let Some(lifetime) = settings.credential_lifetime {
        config.credential_lifetime_secs = lifetime.as_secs();
    }
    if let Some(lifetime) = settings.hsp_credential_lifetime {
        config.hsp_credential_lifetime_secs = lifetime.as_secs();
    }
    if let Some(token) = settings.signing_token {
        let pin = std::fs::read_to_string(&token.pin_file)
            .map_err(|e| format!("token PIN file {}: {e}", token.pin_file.display()))?;
        config.signing_token = Some(vitalgate_ttp::TokenKey {
            module: token.module,
            token_label: token.token_label,
            key_label: token.key_label,
            pin: zeroize::Zeroizing::new(pin.trim().to_string()),
        });
    }
    let ttp = Ttp::open(config, store).await?;
    let listener = bind(&settings.listen, "the TTP's address").await?;
    let bound = listener.local_addr()?;
    tracing::info!(
        address = %bound,
        admin_token_file = %settings.data_dir.join("admin.token").display(),
        ca_certificate = %settings.data_dir.join("x509-ca.pem").display(),
        "TTP listening (TLS)"
    );
    ttp.serve(listener, shutdown_signal())
        .await
        .map_err(|e| format!("the TTP on {bound}: {e}"))?;
    tracing::info!("TTP stopped");
    ops::shutdown_telemetry(telemetry).await;
    Ok(())
}

pub(crate) async fn hsp(flags: HspFlags, env: &Env) -> CliResult {
    let file = load::config_file(resolve::config_path(flags.config.as_ref(), env)?.as_ref())?.hsp;
    let settings = resolve::hsp(&flags, &file, env)?;
    let ops_settings = resolve::ops(
        &flags.ops,
        file.ops_listen.clone(),
        env,
        resolve::DEFAULT_HSP_OPS,
    )?;
    // Held until the process ends: a second HSP (or `vitalgate dev`) on
    // this directory refuses.
    let _data_dir = crate::data_lock::lock(&settings.data_dir)?;
    let readiness = ops::ServiceReadiness::with_trust_bundle();
    let telemetry = ops::start("vitalgate-hsp", &ops_settings, readiness.clone()).await?;
    crate::process::raise_open_files_limit();
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = open_store(
        settings.database_url.as_deref(),
        &settings.pool,
        &settings.data_dir,
    )
    .await?;
    readiness.store_opened(store.clone());
    let ca_pem = load::pem(&settings.ttp_ca, "TTP CA certificate")?;
    let mut config = HspConfig::new(settings.data_dir.clone(), settings.ttp_url.clone(), ca_pem);
    config.skew_window_secs = settings.skew_window_secs;
    config.resumption_epoch = settings.resumption_epoch;
    config.tls = settings.tls.clone();
    if config.tls == vitalgate_hsp::HspTls::InsecurePlaintext {
        tracing::warn!("the gRPC port serves WITHOUT TLS (--insecure-plaintext)");
    }
    config.vitals_retention = settings.vitals_retention;
    config.key_encryption_key = settings.kek_file.as_deref().map(load::kek).transpose()?;
    config.previous_key_encryption_key = settings
        .previous_kek_file
        .as_deref()
        .map(load::kek)
        .transpose()?;
    if let Some(rules) = &settings.policy {
        config.policy = vitalgate_hsp::policy::Policy::from_rules(rules)
            .map_err(|e| format!("[[hsp.policy]]: {e}"))?;
    }
    if let Some(rules) = settings.alerts.clone() {
        config.alerts = rules;
    }
    config.webhooks = settings
        .webhooks
        .iter()
        .map(vitalgate_hsp::webhooks::Webhook::load)
        .collect::<Result<_, _>>()?;
    // Mail for addresses, the SMS gateway for numbers: codes and notices alike.
    let mut senders: Vec<Arc<dyn vitalgate_otp::CodeSender>> = Vec::new();
    if let Some(smtp) = &settings.smtp {
        senders.push(Arc::new(crate::load::smtp_sender(smtp)?));
    }
    if let Some(sms) = &settings.sms {
        senders.push(Arc::new(vitalgate_hsp::sms::SmsGateway::load(sms)?));
    }
    if !senders.is_empty() {
        config.code_sender = Some(vitalgate_hsp::CodeSenderHandle(Arc::new(
            vitalgate_otp::Senders::new(senders),
        )));
    }
    if let Some(escalation) = &settings.escalation {
        config.escalation = escalation.load()?;
    }
    config.fhir_clients = settings
        .fhir_clients
        .iter()
        .map(vitalgate_hsp::FhirClient::load)
        .collect::<Result<_, _>>()?;
    let portal = &settings.portal;
    let mut portal_config = vitalgate_hsp::PortalConfig {
        secure_cookies: portal.behind_tls,
        tls: portal
            .tls_files
            .as_ref()
            .map(|(cert, key)| {
                vitalgate_hsp::PortalTls::from_pem_files(cert, key)
                    .map_err(|e| format!("the portal's TLS: {e}"))
            })
            .transpose()?,
        administrators: portal.administrators.clone(),
        trusted_proxies: portal.trusted_proxies.clone(),
        ttp_admin_token: portal
            .ttp_admin_token_file
            .as_ref()
            .map(|path| {
                vitalgate_rpc::admin::AdminToken::read(path)
                    .map_err(|e| format!("the TTP's administrator token {}: {e}", path.display()))
            })
            .transpose()?,
        ..Default::default()
    };
    if portal.listen.is_some()
        && !crate::portal_page::configure(portal.assets.clone(), &mut portal_config)?
    {
        tracing::warn!("{}", crate::portal_page::MISSING);
    }
    let token = settings
        .enrollment_token
        .as_ref()
        .map(|t| crate::load::secret(t, "the enrollment token"))
        .transpose()?;
    let hsp = Hsp::open(config, store, token.as_deref()).await?;
    // Opening loaded the TTP's keys and revocations (or those it kept, when
    // the TTP is down: readiness then says so until the link is back).
    readiness.hsp_opened(hsp.clone());
    hsp.publish_metrics();
    // A listener that fails after the start (the portal's TLS, an accept
    // loop) stops the whole service with its address and cause, instead of
    // dying alone in its task while the rest looks healthy.
    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(2);
    let portal_task = match &portal.listen {
        Some(address) => {
            let listener = bind(address, "the portal's address").await?;
            let scheme = if portal_config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let bound = listener.local_addr()?;
            tracing::info!(address = %bound, scheme, "portal listening");
            let (hsp, failed) = (hsp.clone(), failed_tx.clone());
            Some(tokio::spawn(async move {
                let served = hsp
                    .serve_portal(portal_config, listener, shutdown_signal())
                    .await;
                if let Err(e) = served {
                    let _ = failed.send(format!("the portal on {bound}: {e}")).await;
                }
            }))
        }
        None => None,
    };
    let listener = bind(&settings.listen, "the HSP's address").await?;
    let bound = listener.local_addr()?;
    let scheme = if settings.tls == vitalgate_hsp::HspTls::InsecurePlaintext {
        "http"
    } else {
        "https"
    };
    tracing::info!(address = %bound, scheme, serial = hsp.serial(), spiffe_id = %hsp.spiffe_id(), "HSP listening");
    let devices = match &settings.device_plaintext_listen {
        Some(address) => {
            let listener = bind(address, "the device-sessions address").await?;
            let devices_bound = listener.local_addr()?;
            tracing::info!(address = %devices_bound, "device sessions only, without TLS");
            let (hsp, failed) = (hsp.clone(), failed_tx.clone());
            Some(tokio::spawn(async move {
                let served = hsp
                    .serve_devices_plaintext(listener, shutdown_signal())
                    .await;
                if let Err(e) = served {
                    let message = format!("the device sessions on {devices_bound}: {e}");
                    let _ = failed.send(message).await;
                }
            }))
        }
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let upkeep = {
        let hsp = hsp.clone();
        tokio::spawn(async move { hsp.maintain(stop_rx).await })
    };
    drop(failed_tx);
    tokio::select! {
        served = hsp.serve(listener, shutdown_signal()) => {
            served.map_err(|e| format!("the HSP on {bound}: {e}"))?;
        }
        Some(failure) = failed_rx.recv() => return Err(failure.into()),
    }
    let _ = stop_tx.send(true);
    let _ = upkeep.await;
    if let Some(devices) = devices {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), devices).await;
    }
    // Live views (server-sent events) hold connections open: give them a
    // moment to close, then stop anyway.
    if let Some(portal) = portal_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), portal).await;
    }
    tracing::info!("HSP stopped");
    ops::shutdown_telemetry(telemetry).await;
    Ok(())
}

pub(crate) async fn device(flags: DeviceFlags, env: &Env) -> CliResult {
    init_logging("info");
    let file =
        load::config_file(resolve::config_path(flags.config.as_ref(), env)?.as_ref())?.device;
    let settings = resolve::device(&flags, &file, env)?;
    let mut config = DeviceConfig::new(settings.data_dir.clone());
    config.sample_interval = settings.sample_interval;
    // Renewal goes to the TTP that enrolled the device, through its CA.
    match std::fs::read_to_string(&settings.ttp_ca) {
        Ok(ca_pem) => {
            let tls = ClientTls::new(&ca_pem, PeerName::ttp(), None).map_err(|e| {
                format!("the TTP CA certificate {}: {e}", settings.ttp_ca.display())
            })?;
            config.ttp = Some(Endpoint::tls(settings.ttp_url.clone(), tls));
        }
        Err(e) => tracing::warn!(
            ca = %settings.ttp_ca.display(),
            error = %e,
            "no TTP CA certificate: the credential will not renew itself (give --ttp-ca)"
        ),
    }
    let token = settings
        .enrollment_token
        .as_ref()
        .map(|t| crate::load::secret(t, "the enrollment token"))
        .transpose()?;
    let mut device = match &token {
        Some(token) => {
            let mut ttp = connect_ttp(&settings.ttp_url, &settings.ttp_ca).await?;
            Device::open(config, Some(&mut ttp), Some(token)).await?
        }
        None => Device::open(config, None, None).await?,
    };
    let hsp_url = crate::connect::hsp_endpoint(
        &settings.hsp_url,
        &settings.hsp_ca,
        settings.hsp_server_name.as_deref(),
    )?;
    tracing::info!(serial = device.credential().serial(), hsp = %hsp_url, "device agent started");
    let stats = device.stats();
    let (stop_tx, stop_rx) = watch::channel(false);
    let agent = tokio::spawn(async move { device.run(hsp_url, stop_rx).await });
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = agent.await;
    let read = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    tracing::info!(
        sent = read(&stats.samples_sent),
        acked = read(&stats.samples_acked),
        buffered = read(&stats.samples_buffered),
        dropped = read(&stats.samples_dropped),
        "device agent stopped"
    );
    let _ = Arc::strong_count(&stats);
    Ok(())
}

/// A listener on `address`, or one line naming what it is for, the address
/// and why not (with a hint for the usual causes).
pub(crate) async fn bind(address: &str, what: &str) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| bind_error(what, address, &e))
}

/// The message for a failed bind.
fn bind_error(what: &str, address: &str, error: &std::io::Error) -> String {
    let hint = match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process listens there (stop it, or choose another port)"
        }
        std::io::ErrorKind::PermissionDenied => "; ports under 1024 need privileges",
        std::io::ErrorKind::AddrNotAvailable => "; no interface of this host has that address",
        _ => "",
    };
    format!("cannot listen on {what} {address}: {error}{hint}")
}
