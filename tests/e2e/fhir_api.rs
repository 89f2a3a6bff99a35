//! The FHIR read API with SMART Backend Services (issue 18): a registered
//! backend client signs an assertion with its P-384 key, gets a five-minute
//! token, searches a streaming patient's Observations page by page and
//! reads the Patient; a wrong key, an expired assertion, a replayed `jti`,
//! a scope the client does not have, and no token at all are refused;
//! every read is audited under the client's name; and what the API returned
//! is validated by fhir.resources' R4B models and the vital-signs profile
//! (`tests/fhir/validate.py`), an implementation independent of ours.

use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use vitalgate_hsp::{FhirClient, FhirClientConfig, HspConfig, PortalConfig};
use vitalgate_rpc::clock::Clock;

use crate::false_alarms::streaming;
use crate::harness::Platform;
use crate::portal::serve_portal;

const CLIENT: &str = "ehr-integration";
const KID: &str = "ehr-2026-12";

/// The clients the HSP of this test registers (its configure function is a
/// plain `fn`).
static CLIENTS: OnceLock<Vec<FhirClient>> = OnceLock::new();

fn configure(config: &mut HspConfig) {
    config.fhir_clients = CLIENTS.get().expect("clients").clone();
}

/// A P-384 key pair and its public half as a JWK.
fn key_pair() -> (EncodingKey, Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let raw = pair.public_key_raw();
    assert_eq!(raw.len(), 97, "an uncompressed P-384 point");
    let jwk = json!({
        "kty": "EC",
        "crv": "P-384",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..49]),
        "y": URL_SAFE_NO_PAD.encode(&raw[49..]),
        "kid": KID,
        "alg": "ES384",
        "use": "sig",
    });
    (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
}

/// A client assertion for `aud`, signed by `key`.
fn assertion(key: &EncodingKey, aud: &str, exp: u64, jti: &str) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(KID.into());
    let claims = json!({ "iss": CLIENT, "sub": CLIENT, "aud": aud, "exp": exp, "jti": jti });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

/// An HTTP exchange: the status and the JSON body.
async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .expect("request");
    let response = client.request(request).await.expect("the HSP answers");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn token_request(token_url: &str, assertion: &str, scope: &str) -> (u16, Value) {
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("scope", scope)
        .append_pair(
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        )
        .append_pair("client_assertion", assertion)
        .finish();
    call(
        "POST",
        token_url,
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form),
    )
    .await
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("authorization", b)])
        .unwrap_or_default();
    call("GET", url, &headers, None).await
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|entry| entry["resource"].clone()).collect())
        .unwrap_or_default()
}

fn next_link(bundle: &Value) -> Option<String> {
    bundle["link"]
        .as_array()?
        .iter()
        .find_map(|l| (l["relation"] == "next").then(|| l["url"].as_str().map(str::to_string))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_service_reads_vitals_with_a_smart_token_and_fhir_resources_validates() {
    let python = crate::fhir::fhir_python();
    let dir = tempfile::tempdir().expect("tempdir");
    let (key, jwk) = key_pair();
    let (stranger, _) = key_pair();
    let jwks_file = dir.path().join("ehr.jwks.json");
    std::fs::write(&jwks_file, json!({ "keys": [jwk] }).to_string()).expect("jwks");
    let client = FhirClient::load(&FhirClientConfig {
        client_id: CLIENT.into(),
        jwks_file,
        scopes: vec!["system/Observation.rs".into(), "system/Patient.rs".into()],
    })
    .expect("client");
    let _ = CLIENTS.set(vec![client]);
    let platform = Platform::start_with(configure).await;
    let portal = serve_portal(&platform, PortalConfig::default()).await;
    let fhir = format!("{portal}/fhir");
    let token_url = format!("{fhir}/auth/token");

    platform.put_patient("pt-fhir", "Ada Lovelace").await;
    let (_condition, _stop) = streaming(&platform, "pt-fhir").await;
    let store = platform.hsp().store.clone();
    let mut serial = None;
    for _ in 0..300 {
        serial = store.active_device("pt-fhir").await.expect("binding");
        if let Some(serial) = serial {
            if store.vitals_count(Some(serial)).await.expect("count") >= 30 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serial = serial.expect("the device is bound");

    // The CapabilityStatement is open and names the token endpoint.
    let (status, capability) = get(&format!("{fhir}/metadata"), None).await;
    assert_eq!(status, 200);
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    assert_eq!(
        capability["rest"][0]["security"]["extension"][0]["extension"][0]["valueUri"],
        token_url
    );

    // Refused: a key the client does not hold, an expired assertion, a
    // scope it was not given, another audience.
    let now = platform.clock.now();
    let forged = assertion(&stranger, &token_url, now + 60, "jti-forged");
    let (status, answer) = token_request(&token_url, &forged, "system/Observation.rs").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_client")),
        "{answer}"
    );
    let expired = assertion(&key, &token_url, now - 5, "jti-expired");
    let (status, answer) = token_request(&token_url, &expired, "system/Observation.rs").await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error_description"]
        .as_str()
        .expect("why")
        .contains("expired"));
    let elsewhere = assertion(&key, "https://other.example/token", now + 60, "jti-aud");
    let (status, _) = token_request(&token_url, &elsewhere, "system/Observation.rs").await;
    assert_eq!(status, 401, "another audience");
    let device_scope = assertion(&key, &token_url, now + 60, "jti-scope");
    let (status, answer) = token_request(&token_url, &device_scope, "system/Device.rs").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_scope")),
        "{answer}"
    );

    // Granted, once per jti.
    let good = assertion(&key, &token_url, now + 60, "jti-1");
    let (status, granted) =
        token_request(&token_url, &good, "system/Observation.rs system/Patient.rs").await;
    assert_eq!(status, 200, "{granted}");
    assert_eq!(granted["token_type"], "bearer");
    assert_eq!(granted["expires_in"], 300);
    let token = granted["access_token"].as_str().expect("token").to_string();
    let (status, replayed) = token_request(&token_url, &good, "system/Observation.rs").await;
    assert_eq!(status, 401, "a replayed jti: {replayed}");
    assert!(replayed["error_description"]
        .as_str()
        .expect("why")
        .contains("used before"));

    // No token, a made-up one, a scope not granted.
    let search = format!("{fhir}/Observation?patient=pt-fhir&_count=20");
    assert_eq!(get(&search, None).await.0, 401);
    assert_eq!(get(&search, Some("bm90.YSB0b2tlbg")).await.0, 401);
    let (status, refused) = get(&format!("{fhir}/Device/device-{serial}"), Some(&token)).await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["resourceType"], "OperationOutcome");

    // Two pages of Observations, oldest first, disjoint.
    let (status, first) = get(&search, Some(&token)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (first["resourceType"].as_str(), first["type"].as_str()),
        (Some("Bundle"), Some("searchset"))
    );
    let first_page = entries(&first);
    assert!(
        !first_page.is_empty() && first_page.len() <= 20,
        "{}",
        first_page.len()
    );
    let next = next_link(&first).expect("a next page");
    assert!(next.starts_with(&fhir), "{next}");
    let (status, second) = get(&next, Some(&token)).await;
    assert_eq!(status, 200);
    let second_page = entries(&second);
    assert!(!second_page.is_empty());
    let ids = |page: &[Value]| -> Vec<String> {
        page.iter()
            .map(|o| o["id"].as_str().expect("id").to_string())
            .collect()
    };
    let first_ids = ids(&first_page);
    assert!(
        ids(&second_page).iter().all(|id| !first_ids.contains(id)),
        "pages are disjoint"
    );
    let times: Vec<String> = first_page
        .iter()
        .chain(&second_page)
        .map(|o| o["effectiveDateTime"].as_str().expect("time").to_string())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // By code: SpO2 only.
    let (status, spo2) = get(
        &format!("{fhir}/Observation?patient=pt-fhir&code=http://loinc.org|59408-5"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert!(entries(&spo2)
        .iter()
        .all(|o| o["code"]["coding"].to_string().contains("59408-5")));
    let (status, unsupported) = get(
        &format!("{fhir}/Observation?patient=pt-fhir&_sort=date"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 400, "{unsupported}");

    // The Patient, by pseudonym only.
    let (status, patient) = get(&format!("{fhir}/Patient/pt-fhir"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(patient["resourceType"], "Patient");
    assert!(!patient.to_string().contains("Ada"), "{patient}");
    assert_eq!(
        get(&format!("{fhir}/Patient/pt-nobody"), Some(&token))
            .await
            .0,
        404
    );

    // Every read is audited under the client's name.
    let reads: Vec<String> = platform
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event.kind == "fhir.read")
        .map(|e| format!("{} {} {}", e.event.actor, e.event.subject, e.event.detail))
        .collect();
    assert!(reads.len() >= 4, "{reads:?}");
    assert!(
        reads
            .iter()
            .all(|r| r.starts_with("ehr-integration pt-fhir ")),
        "{reads:?}"
    );

    // And fhir.resources agrees with all of it.
    let Some(python) = python else {
        return;
    };
    let write = |name: &str, resources: Vec<Value>| {
        let path = dir.path().join(format!("{name}.ndjson"));
        let lines: Vec<String> = resources.iter().map(Value::to_string).collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write");
        path
    };
    let observations: Vec<Value> = first_page.into_iter().chain(second_page).collect();
    let files = [
        write("Bundle", vec![first, second, spo2]),
        write("CapabilityStatement", vec![capability]),
        write("Observation", observations),
        write("Patient", vec![patient]),
    ];
    let checked = crate::fhir::validate(&python, &files);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(report.contains("0 problems"), "{report}");
}
