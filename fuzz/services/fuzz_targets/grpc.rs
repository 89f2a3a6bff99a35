//! Every gRPC request message type (the TTP's, the HSP's, the clinicians'
//! and the device session's frames and vitals) decoded with prost from
//! arbitrary bytes; what decodes re-encodes canonically. The TTP's requests
//! then go into the TTP's own handlers (its tonic service implementation on
//! an in-memory store, with and without the administrator's token, no
//! network), and a vitals batch goes through the HSP's sample checks. The
//! first byte picks the type (and, in its high bit, the token). Nothing may
//! panic.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tonic::Request;
use vitalgate_proto::v1;
use vitalgate_proto::v1::ttp_server::Ttp as _;
use vitalgate_ttp::{Ttp, TtpConfig};

struct Server {
    runtime: tokio::runtime::Runtime,
    ttp: Ttp,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("vitalgate-fuzz-ttp-{}", std::process::id()));
        let store = Arc::new(vitalgate_store::MemoryStore::new());
        let ttp = runtime
            .block_on(Ttp::open(TtpConfig::new(dir), store))
            .expect("TTP");
        Server { runtime, ttp }
    })
}

/// Decodes `bytes` as `M`; what decodes must encode to bytes that decode and
/// encode to the same bytes (compared as bytes: a float may be NaN).
fn decoded<M: Message + Default>(bytes: &[u8]) -> Option<M> {
    let message = M::decode(bytes).ok()?;
    let encoded = message.encode_to_vec();
    let again = M::decode(encoded.as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again.encode_to_vec(), encoded, "encoding is not stable");
    Some(message)
}

fn request<M>(message: M, admin: bool) -> Request<M> {
    let mut request = Request::new(message);
    if admin {
        let bearer = format!("Bearer {}", server().ttp.admin_token());
        request
            .metadata_mut()
            .insert("authorization", bearer.parse().expect("ascii"));
    }
    request
}

/// Calls a TTP handler and drops the answer: only a panic is a failure.
macro_rules! ttp_call {
    ($method:ident, $ty:ty, $bytes:expr, $admin:expr) => {
        if let Some(message) = decoded::<$ty>($bytes) {
            let s = server();
            let _ = s.runtime.block_on(s.ttp.$method(request(message, $admin)));
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let admin = pick & 0x80 != 0;
    match pick & 0x7f {
        // The TTP, through its handlers.
        0 => ttp_call!(
            create_enrollment_token,
            v1::CreateEnrollmentTokenRequest,
            bytes,
            admin
        ),
        1 => ttp_call!(enroll, v1::EnrollRequest, bytes, admin),
        2 => ttp_call!(renew, v1::RenewRequest, bytes, admin),
        3 => ttp_call!(revoke, v1::RevokeRequest, bytes, admin),
        4 => ttp_call!(list_parties, v1::ListPartiesRequest, bytes, admin),
        5 => ttp_call!(trust_bundle, v1::TrustBundleRequest, bytes, admin),
        6 => ttp_call!(watch_revocations, v1::WatchRevocationsRequest, bytes, admin),
        7 => ttp_call!(
            issue_service_certificate,
            v1::IssueServiceCertificateRequest,
            bytes,
            admin
        ),
        // The HSP: the device session's frames and what a record carries.
        8 => drop(decoded::<v1::DeviceFrame>(bytes)),
        9 => {
            let _ = vitalgate_hsp::fuzzing::vitals_batch(bytes);
        }
        // The HSP's unary requests.
        10 => drop(decoded::<v1::VitalsCountRequest>(bytes)),
        11 => drop(decoded::<v1::PutPatientRequest>(bytes)),
        12 => drop(decoded::<v1::GetPatientRequest>(bytes)),
        13 => drop(decoded::<v1::BindDeviceRequest>(bytes)),
        14 => drop(decoded::<v1::SetCareTeamMemberRequest>(bytes)),
        15 => drop(decoded::<v1::IssueFactorTokenRequest>(bytes)),
        16 => drop(decoded::<v1::StartPasswordRegistrationRequest>(bytes)),
        17 => drop(decoded::<v1::FinishPasswordRegistrationRequest>(bytes)),
        18 => drop(decoded::<v1::EnrollOtpRequest>(bytes)),
        19 => drop(decoded::<v1::EnrollBiometricRequest>(bytes)),
        20 => drop(decoded::<v1::SetCodeAddressRequest>(bytes)),
        21 => drop(decoded::<v1::RecoverDeviceRequest>(bytes)),
        // The clinicians' service.
        22 => drop(decoded::<v1::ListPatientsRequest>(bytes)),
        23 => drop(decoded::<v1::HistoryRequest>(bytes)),
        24 => drop(decoded::<v1::WatchRequest>(bytes)),
        // The TTP's later RPCs, after the others so the seeds' picks stay.
        25 => ttp_call!(renew_challenge, v1::RenewChallengeRequest, bytes, admin),
        26 => ttp_call!(rotate_ttp_key, v1::RotateTtpKeyRequest, bytes, admin),
        // The HSP's lossy-link and hub sessions' messages.
        27 => drop(decoded::<v1::Datagram>(bytes)),
        28 => drop(decoded::<v1::RelayFrame>(bytes)),
        29 => drop(decoded::<v1::DesignateRelayRequest>(bytes)),
        _ => {}
    }
});
