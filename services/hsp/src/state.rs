//! What an HSP replica holds while it runs, each part behind a narrow
//! accessor: the modules that serve devices, clinicians and administrators
//! reach the part they need and nothing else.

use std::sync::Arc;

use tonic::Status;
use vitalgate_core::replay::InMemoryReplayCache;
use vitalgate_rpc::admin::AdminToken;
use vitalgate_rpc::tls::ServerCert;
use vitalgate_store::Store;

use crate::admission::Admission;
use crate::alerts::AlertRaiser;
use crate::credential::{OwnCredential, Responders};
use crate::escalation::{Escalator, Pager};
use crate::factors::FactorVerifier;
use crate::fhir_api::FhirApi;
use crate::live::LiveSessions;
use crate::login::TicketBook;
use crate::resumption::TicketKeys;
use crate::revocation::TtpLink;
use crate::stats::HspStats;
use crate::trust::Peers;
use crate::vault::SecretVault;
use crate::watchers::Watchers;
use crate::webhooks::Notifier;
use crate::writer::{Committed, VitalsWriter};
use crate::HspConfig;

/// One replica's state; `Hsp` is a cheap handle to it.
pub struct State {
    config: HspConfig,
    store: Arc<dyn Store>,
    own: OwnCredential,
    prefilter: InMemoryReplayCache,
    admission: Arc<Admission>,
    resumption: Option<TicketKeys>,
    peers: Arc<Peers>,
    factors: FactorVerifier,
    tickets: TicketBook,
    live: Arc<LiveSessions>,
    stats: Arc<HspStats>,
    writer: VitalsWriter,
    watchers: Arc<Watchers>,
    alerts: AlertRaiser,
    notifier: Notifier,
    pager: Pager,
    escalator: Escalator,
    fhir: FhirApi,
    vault: Arc<SecretVault>,
    admin: AdminToken,
    ttp: TtpLink,
    server_cert: Option<Arc<ServerCert>>,
}

/// Who this replica is: its credential, its signing key, and the SPIFFE ID
/// its TTP link is certified under.
pub(crate) struct ServiceIdentity {
    /// Where the identity is kept (renewals are written there).
    pub(crate) dir: std::path::PathBuf,
    pub(crate) identity: vitalgate_rpc::identity::Identity,
    pub(crate) ttp: TtpLink,
    /// The certificate the gRPC port serves, unless it serves plaintext.
    pub(crate) server_cert: Option<Arc<ServerCert>>,
}

impl State {
    /// Assembles a replica from what `Hsp::open` obtained (the identity and
    /// the TTP link, the peers it trusts, the data key, the administrators'
    /// token) and what follows from the configuration.
    pub(crate) async fn assemble(
        config: HspConfig,
        store: Arc<dyn Store>,
        service: ServiceIdentity,
        peers: Peers,
        vault: Arc<SecretVault>,
        admin: AdminToken,
    ) -> Result<Self, crate::HspError> {
        let ServiceIdentity {
            dir,
            identity,
            ttp,
            server_cert,
        } = service;
        let own = OwnCredential::new(dir, identity, &config);
        let stats = Arc::new(HspStats::default());
        let notifier = Notifier::new(
            config.webhooks.clone(),
            config.webhook_retry,
            store.clone(),
            config.clock.clone(),
        );
        let pager = Pager::new(
            &config.escalation,
            config.code_sender.as_ref().map(|s| s.0.clone()),
            config.webhook_retry,
            store.clone(),
            config.clock.clone(),
        );
        let escalator = Escalator::new(
            store.clone(),
            config.clock.clone(),
            config.escalation.clone(),
            pager.clone(),
        );
        let alerts = AlertRaiser::new(store.clone(), config.clock.clone(), config.alerts.clone())
            .notifying(notifier.clone())
            .escalating(escalator.waker());
        let watchers = Arc::new(Watchers::default());
        let writer = VitalsWriter::start_notifying(
            store.clone(),
            stats.clone(),
            config.max_write_samples,
            Committed {
                alerts: Some(alerts.start()),
                watchers: Some(watchers.clone()),
            },
        );
        let factors = FactorVerifier::for_replica(&config, store.clone(), vault.clone()).await?;
        let admission =
            Arc::new(Admission::for_replica(config.admission.clone(), &*store, &vault).await?);
        let resumption = match config.resumption_epoch {
            Some(epoch) => Some(TicketKeys::for_replica(epoch.as_secs(), &*store, &vault).await?),
            None => None,
        };
        let fhir = FhirApi::for_replica(
            config.fhir_clients.clone(),
            &*store,
            &vault,
            config.clock.now_ms(),
        )
        .await?;
        Ok(Self {
            own,
            ttp,
            server_cert,
            vault,
            admin,
            factors,
            tickets: TicketBook::default(),
            peers: Arc::new(peers),
            prefilter: InMemoryReplayCache::new(config.prefilter_capacity),
            admission,
            resumption,
            live: Arc::new(LiveSessions::new(stats.clone())),
            writer,
            watchers,
            alerts,
            notifier,
            pager,
            escalator,
            fhir,
            stats,
            store,
            config,
        })
    }

    /// The replica's own credential serial (the newest, after renewals).
    pub(crate) fn serial(&self) -> u64 {
        self.own.serial()
    }

    /// The replica's own credential, and what signs with it.
    pub(crate) fn own_credential(&self) -> &OwnCredential {
        &self.own
    }

    /// The settings the replica started with.
    pub(crate) fn config(&self) -> &HspConfig {
        &self.config
    }

    /// The store all replicas share.
    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Unix seconds now, by the replica's clock.
    pub(crate) fn now(&self) -> u64 {
        self.config.clock.now()
    }

    /// Unix milliseconds now, by the replica's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.config.clock.now_ms()
    }

    /// Writes an audit event (a failure is logged, never fatal).
    pub(crate) async fn audit(&self, kind: &str, actor: &str, subject: &str, detail: &str) {
        vitalgate_rpc::audit(
            &*self.store,
            &*self.config.clock,
            kind,
            actor,
            subject,
            detail,
        )
        .await
    }

    /// Writes an audit event that must exist for the caller to go on (a
    /// read of patients' data): UNAVAILABLE when it cannot be written.
    pub(crate) async fn audit_required(
        &self,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), Status> {
        vitalgate_rpc::audit_required(
            &*self.store,
            &*self.config.clock,
            kind,
            actor,
            subject,
            detail,
        )
        .await
    }

    /// The handshake's responders, of the credential current now.
    pub(crate) fn responders(&self) -> Arc<Responders> {
        self.own.responders()
    }

    /// The in-memory replay pre-filter for first messages.
    pub(crate) fn prefilter(&self) -> &InMemoryReplayCache {
        &self.prefilter
    }

    /// Which handshakes the replica starts (caps, cookies).
    pub(crate) fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// The resumption ticket keys, unless resumption is off.
    pub(crate) fn resumption(&self) -> Option<&TicketKeys> {
        self.resumption.as_ref()
    }

    /// The TTP's keys and revocations, and the peers' credentials.
    pub(crate) fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// The policy and what factors are checked with.
    pub(crate) fn factors(&self) -> &FactorVerifier {
        &self.factors
    }

    /// Tickets of logins through this replica.
    pub(crate) fn tickets(&self) -> &TicketBook {
        &self.tickets
    }

    /// The live-session registry.
    pub(crate) fn live(&self) -> &Arc<LiveSessions> {
        &self.live
    }

    /// The counters.
    pub(crate) fn counters(&self) -> &Arc<HspStats> {
        &self.stats
    }

    /// The one writer of vitals for this replica.
    pub(crate) fn writer(&self) -> &VitalsWriter {
        &self.writer
    }

    /// The clinicians watching devices' vitals live on this replica.
    pub(crate) fn watchers(&self) -> &Arc<Watchers> {
        &self.watchers
    }

    /// Raises alerts on what the writer stored, and on silence.
    pub(crate) fn alerts(&self) -> &AlertRaiser {
        &self.alerts
    }

    /// Posts notices to the hospital's webhooks.
    pub(crate) fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Sends notices to people (break-glass accesses, alerts).
    pub(crate) fn pager(&self) -> &Pager {
        &self.pager
    }

    /// Takes alerts' escalation steps.
    pub(crate) fn escalator(&self) -> &Escalator {
        &self.escalator
    }

    /// The FHIR read API's clients and token key.
    pub(crate) fn fhir(&self) -> &FhirApi {
        &self.fhir
    }

    /// Seals and opens patients' records and factor secrets.
    pub(crate) fn vault(&self) -> &SecretVault {
        &self.vault
    }

    /// The administrators' bearer token.
    pub(crate) fn admin(&self) -> &AdminToken {
        &self.admin
    }

    /// The TTP over mutual TLS.
    pub(crate) fn ttp(&self) -> &TtpLink {
        &self.ttp
    }

    /// The certificate the gRPC port serves (none when plaintext).
    pub(crate) fn server_cert(&self) -> Option<&Arc<ServerCert>> {
        self.server_cert.as_ref()
    }
}
