//! The FHIR read API with SMART Backend Services (issue 18): a registered
//! backend client signs an assertion with its P-384 key, gets a five-minute
//! token, searches a streaming patient's Observations page by page and
//! reads the Patient; a wrong key, an expired assertion, a replayed `jti`,
//! a scope the client does not have, and no token at all are refused;
//! every read is audited under the client's name; and what the API returned
//! is validated by fhir.resources' R4B models and the vital-signs profile
//! (`tests/fhir/validate.py`), an implementation independent of ours. A
//! second client, a data warehouse, exports every patient in bulk
//! (`$export`: kick-off, status, NDJSON files) and searches the audit log
//! as AuditEvents, break-glass access with its `BTG` purpose of use.

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
/// A client with every scope: the hospital's data warehouse.
const WAREHOUSE: &str = "data-warehouse";
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
    client_assertion(CLIENT, key, aud, exp, jti)
}

/// `client`'s assertion for `aud`, signed by `key`.
fn client_assertion(client: &str, key: &EncodingKey, aud: &str, exp: u64, jti: &str) -> String {
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(KID.into());
    let claims = json!({ "iss": client, "sub": client, "aud": aud, "exp": exp, "jti": jti });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

/// An HTTP exchange: the status and the JSON body.
async fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, Value) {
    let (status, _, bytes) = exchange(method, url, headers, body).await;
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// An HTTP exchange: the status, the headers and the body as sent.
async fn exchange(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, hyper::HeaderMap, Bytes) {
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
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, bytes)
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
    let (warehouse_key, warehouse_jwk) = key_pair();
    let register = |client_id: &str, jwk: Value, scopes: &[&str]| {
        let jwks_file = dir.path().join(format!("{client_id}.jwks.json"));
        std::fs::write(&jwks_file, json!({ "keys": [jwk] }).to_string()).expect("jwks");
        FhirClient::load(&FhirClientConfig {
            client_id: client_id.into(),
            jwks_file,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        })
        .expect("client")
    };
    let clients = vec![
        register(CLIENT, jwk, &["system/Observation.rs", "system/Patient.rs"]),
        register(
            WAREHOUSE,
            warehouse_jwk,
            &["system/*.rs", "system/AuditEvent.rs"],
        ),
    ];
    let _ = CLIENTS.set(clients);
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
    // As instants: "…:01Z" sorts after "…:01.5Z" as text.
    let times: Vec<i64> = first_page
        .iter()
        .chain(&second_page)
        .map(|o| {
            let text = o["effectiveDateTime"].as_str().expect("time");
            vitalgate_fhir::search::instant_range(text)
                .expect("an instant")
                .0
        })
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

    // The warehouse: a bulk export and the audit log.
    let warehouse = {
        let signed = client_assertion(WAREHOUSE, &warehouse_key, &token_url, now + 60, "w-1");
        let (status, granted) =
            token_request(&token_url, &signed, "system/*.rs system/AuditEvent.rs").await;
        assert_eq!(status, 200, "{granted}");
        granted["access_token"].as_str().expect("token").to_string()
    };
    let exported = bulk_export(&fhir, &warehouse, &token, dir.path()).await;
    let audit_events = audit_log(&platform, &fhir, &warehouse).await;

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
        write("AuditEvent", audit_events),
    ];
    let checked = crate::fhir::validate(&python, &files);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(report.contains("0 problems"), "{report}");
    // The bulk export's files, checked together: every reference resolves.
    let checked = crate::fhir::validate(&python, &exported);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(report.contains("0 problems"), "{report}");
}

/// A bulk export as the Bulk Data Access IG runs it: a kick-off answered
/// 202 with where to poll, a manifest, and NDJSON files read with the
/// token; refused without `Prefer: respond-async`, for a type not exported,
/// beyond the token's scopes, for another group, and for another client.
/// Returns the files, written to `dir/export/`.
async fn bulk_export(
    fhir: &str,
    warehouse: &str,
    ehr: &str,
    dir: &std::path::Path,
) -> Vec<std::path::PathBuf> {
    let bearer = format!("Bearer {warehouse}");
    let asynchronous = [
        ("authorization", bearer.as_str()),
        ("prefer", "respond-async"),
        ("accept", "application/fhir+json"),
    ];
    let kick_off = |url: String, headers: Vec<(&'static str, String)>| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        exchange("GET", &url, &headers, None).await
    };
    let owned = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };

    let (status, _, _) = kick_off(
        format!("{fhir}/Patient/$export"),
        owned(&[("authorization", bearer.as_str())]),
    )
    .await;
    assert_eq!(status, 400, "no Prefer: respond-async");
    for (url, status_wanted) in [
        (format!("{fhir}/Patient/$export?_type=Encounter"), 400),
        (format!("{fhir}/Patient/$export?_typeFilter=x"), 400),
        (format!("{fhir}/Group/ward-3/$export"), 404),
    ] {
        let (status, _, body) = kick_off(url.clone(), owned(&asynchronous)).await;
        assert_eq!(status, status_wanted, "{url}: {body:?}");
    }
    // The EHR's token covers Observation and Patient, not Device.
    let ehr_bearer = format!("Bearer {ehr}");
    let ehr_async = [
        ("authorization", ehr_bearer.as_str()),
        ("prefer", "respond-async"),
    ];
    let (status, _, _) = kick_off(
        format!("{fhir}/Patient/$export?_type=Device"),
        owned(&ehr_async),
    )
    .await;
    assert_eq!(status, 403, "a type beyond the token's scopes");

    let (status, headers, _) = kick_off(
        format!("{fhir}/Group/all/$export?_outputFormat=application%2Ffhir%2Bndjson"),
        owned(&asynchronous),
    )
    .await;
    assert_eq!(status, 202);
    let poll = headers
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .expect("Content-Location")
        .to_string();
    assert!(
        poll.starts_with(&format!("{fhir}/$export-status/")),
        "{poll}"
    );
    // Only the client that started it may poll it.
    assert_eq!(get(&poll, Some(ehr)).await.0, 404, "another client's job");
    let mut tampered = poll.clone();
    tampered.insert(poll.len() - 3, 'A');
    assert_eq!(get(&tampered, Some(warehouse)).await.0, 404, "a forged job");

    let (status, manifest) = get(&poll, Some(warehouse)).await;
    assert_eq!(status, 200, "{manifest}");
    assert_eq!(manifest["requiresAccessToken"], true);
    assert_eq!(
        manifest["request"],
        format!("{fhir}/Group/all/$export?_type=Patient,Device,Observation,Provenance")
    );
    assert!(manifest["transactionTime"].as_str().is_some());
    let outputs = manifest["output"].as_array().expect("output");
    let types: Vec<&str> = outputs
        .iter()
        .map(|o| o["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["Patient", "Device", "Observation", "Provenance"]);

    let out = dir.join("export");
    std::fs::create_dir_all(&out).expect("export dir");
    let mut files = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    for output in outputs {
        let kind = output["type"].as_str().expect("type");
        let url = output["url"].as_str().expect("url");
        assert_eq!(get(url, None).await.0, 401, "a file needs the token");
        let (status, headers, body) =
            exchange("GET", url, &[("authorization", bearer.as_str())], None).await;
        assert_eq!(status, 200, "{kind}");
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/fhir+ndjson")
        );
        let text = String::from_utf8(body.to_vec()).expect("UTF-8");
        for line in text.lines() {
            let resource: Value = serde_json::from_str(line).expect("one resource a line");
            assert_eq!(resource["resourceType"], kind);
        }
        counts.insert(kind.to_string(), text.lines().count());
        let path = out.join(format!("{kind}.ndjson"));
        std::fs::write(&path, text).expect("write");
        files.push(path);
    }
    assert!(
        counts["Patient"] >= 1 && counts["Device"] >= 1,
        "{counts:?}"
    );
    assert!(counts["Provenance"] >= 30, "{counts:?}");
    // Each sample is several Observations and one Provenance.
    assert!(counts["Observation"] > counts["Provenance"], "{counts:?}");
    assert_eq!(
        get(&poll, Some(warehouse)).await.1["transactionTime"],
        manifest["transactionTime"],
        "the job is its id: polled again, the same"
    );
    files
}

/// The audit log as AuditEvents: by patient, paged, by kind, break-glass
/// access with the `BTG` purpose of use. Returns what it read.
async fn audit_log(platform: &Platform, fhir: &str, warehouse: &str) -> Vec<Value> {
    let store = &platform.hsp().store;
    let at_ms = platform.clock.now_ms();
    for (kind, detail) in [
        ("break-glass.opened", "portal: cardiac arrest"),
        (
            "vitals.read",
            "portal: live vitals; break-glass: cardiac arrest",
        ),
    ] {
        store
            .append_audit(&vitalgate_store::AuditEvent {
                at_ms,
                kind: kind.into(),
                actor: "dr-glass".into(),
                subject: "pt-fhir".into(),
                detail: detail.into(),
            })
            .await
            .expect("audit");
    }
    let (status, first) = get(
        &format!("{fhir}/AuditEvent?patient=Patient/pt-fhir&_count=3"),
        Some(warehouse),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let first_page = entries(&first);
    assert_eq!(first_page.len(), 3);
    assert_eq!(
        first_page[0]["subtype"][0]["code"], "vitals.read",
        "newest first"
    );
    assert_eq!(
        first_page[0]["purposeOfEvent"][0]["coding"][0]["code"],
        "BTG"
    );
    let next = next_link(&first).expect("a next page");
    let (status, second) = get(&next, Some(warehouse)).await;
    assert_eq!(status, 200);
    let second_page = entries(&second);
    let newest_of_second: i64 = second_page[0]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    let oldest_of_first: i64 = first_page[2]["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("id");
    assert!(newest_of_second < oldest_of_first, "pages do not overlap");

    let (status, glass) = get(
        &format!("{fhir}/AuditEvent?subtype=break-glass"),
        Some(warehouse),
    )
    .await;
    assert_eq!(status, 200);
    let glass = entries(&glass);
    assert_eq!(glass.len(), 1, "{glass:?}");
    assert_eq!(glass[0]["purposeOfEvent"][0]["coding"][0]["code"], "BTG");
    let (status, _) = get(
        &format!("{fhir}/AuditEvent?patient=pt-fhir&_sort=date"),
        Some(warehouse),
    )
    .await;
    assert_eq!(status, 400, "an unsupported parameter is refused");
    // The reads, and the export, are audited under the warehouse's name.
    let mine: Vec<String> = platform
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event.actor == WAREHOUSE)
        .map(|e| format!("{} {}", e.event.kind, e.event.detail))
        .collect();
    for wanted in [
        "fhir.export bulk export of Patient,Device,Observation,Provenance",
        "fhir.read bulk export file Observation.ndjson",
        "fhir.read AuditEvent search: 3 events",
    ] {
        assert!(
            mine.iter().any(|m| m.starts_with(wanted)),
            "{wanted}: {mine:?}"
        );
    }
    first_page
        .into_iter()
        .chain(second_page)
        .chain(glass)
        .collect()
}

/// A clinician's token, taken from their portal session: it reads their
/// care team's patient and no other, the one a break-glass opened (audited
/// with its reason, an AuditEvent with `BTG`), never the audit log or a bulk
/// export, and ends with the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinicians_token_reads_what_their_session_may_while_it_lasts() {
    use crate::factors::{enroll_totp, set_password, FAST_TOTP};
    use crate::portal_client::PortalClient;
    const CLINICIAN: &str = "dr-rounds";
    const PASSWORD: &str = "night shift on ward nine";

    let platform = Platform::start_with(|config| config.totp = FAST_TOTP).await;
    set_password(&platform, CLINICIAN, PASSWORD).await;
    let totp = enroll_totp(&platform, CLINICIAN).await;
    let portal = serve_portal(&platform, PortalConfig::default()).await;
    let fhir = format!("{portal}/fhir");
    for (pseudonym, name) in [("pt-mine", "Mo Mine"), ("pt-theirs", "Tess Theirs")] {
        platform.put_patient(pseudonym, name).await;
    }
    let admin_token = platform.hsp().hsp.admin_token().to_string();
    crate::factors::hsp_client(&platform)
        .await
        .set_care_team_member(crate::harness::admin(
            vitalgate_proto::v1::SetCareTeamMemberRequest {
                clinician: CLINICIAN.into(),
                pseudonym: "pt-mine".into(),
                member: true,
            },
            &admin_token,
        ))
        .await
        .expect("care team");

    let client = PortalClient::new();
    let mut last = None;
    let signed_in = client
        .sign_in(
            &portal,
            CLINICIAN,
            PASSWORD,
            (&platform.clock, &totp),
            &mut last,
        )
        .await;
    assert_eq!(signed_in.status, 200, "{:?}", signed_in.body);
    let cookie = signed_in.cookie().expect("cookie");
    let csrf = signed_in.body["csrf"].as_str().expect("csrf").to_string();
    let take_token = || async {
        client
            .call(
                &format!("{portal}/api/fhir-token"),
                Some(json!({})),
                Some(&cookie),
                Some(&csrf),
            )
            .await
    };
    let no_csrf = client
        .call(
            &format!("{portal}/api/fhir-token"),
            Some(json!({})),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(no_csrf.status, 403, "a token only from the portal's page");
    let issued = take_token().await;
    assert_eq!(issued.status, 200, "{:?}", issued.body);
    assert_eq!(
        issued.body["scope"],
        "user/Patient.rs user/Observation.rs user/Device.rs"
    );
    let token = issued.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();

    // Their patient, yes; another, no; nothing only backend systems may read.
    let (status, mine) = get(&format!("{fhir}/Patient/pt-mine"), Some(&token)).await;
    assert_eq!(status, 200, "{mine}");
    let (status, theirs) = get(
        &format!("{fhir}/Observation?patient=pt-theirs"),
        Some(&token),
    )
    .await;
    assert_eq!(status, 404, "{theirs}");
    let (status, off_team) = get(&format!("{fhir}/Patient/pt-theirs"), Some(&token)).await;
    assert_eq!(status, 404, "not on the care team");
    // Nobody is answered as someone off the care team is: the token cannot
    // tell who exists.
    for url in [
        format!("{fhir}/Patient/pt-nobody"),
        format!("{fhir}/Observation?patient=pt-nobody"),
    ] {
        let (status, nobody) = get(&url, Some(&token)).await;
        assert_eq!(status, 404, "{url}");
        assert_eq!(
            nobody["issue"][0]["diagnostics"],
            off_team["issue"][0]["diagnostics"]
        );
    }
    let (status, _) = get(&format!("{fhir}/AuditEvent"), Some(&token)).await;
    assert_eq!(status, 403, "the audit log is for backend systems");
    let bearer = format!("Bearer {token}");
    let (status, _, _) = exchange(
        "GET",
        &format!("{fhir}/Patient/$export"),
        &[
            ("authorization", bearer.as_str()),
            ("prefer", "respond-async"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 403, "bulk export is for backend systems");

    // A break-glass in the session opens the other patient to a new token,
    // each read audited with the reason.
    let opened = client
        .break_glass(
            &portal,
            (&cookie, &csrf),
            PASSWORD,
            "pt-theirs",
            "arrest on the ward, care team in theatre",
            || crate::factors::fresh_code(&platform.clock, &totp, &mut last),
        )
        .await;
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    let glass_cookie = opened.cookie().expect("the break-glass session");
    let glass_csrf = opened.body["csrf"].as_str().expect("csrf").to_string();
    let glass = client
        .call(
            &format!("{portal}/api/fhir-token"),
            Some(json!({})),
            Some(&glass_cookie),
            Some(&glass_csrf),
        )
        .await;
    let glass_token = glass.body["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let (status, theirs) = get(&format!("{fhir}/Patient/pt-theirs"), Some(&glass_token)).await;
    assert_eq!(status, 200, "{theirs}");
    let reads: Vec<String> = platform
        .audit_events()
        .await
        .into_iter()
        .filter(|e| e.event.kind == "fhir.read" && e.event.actor == CLINICIAN)
        .map(|e| format!("{} {}", e.event.subject, e.event.detail))
        .collect();
    assert!(
        reads.iter().any(|r| r == "pt-mine fhir: Patient read"),
        "{reads:?}"
    );
    assert!(
        reads.iter().any(|r| {
            r
            == "pt-theirs fhir: Patient read; break-glass: arrest on the ward, care team in theatre"
        }),
        "{reads:?}"
    );
    assert!(platform
        .audit_events()
        .await
        .iter()
        .any(|e| e.event.kind == "vitals.refused" && e.event.actor == CLINICIAN));

    // Signed out, the session's tokens read nothing.
    let out = client
        .call(
            &format!("{portal}/api/logout"),
            Some(json!({})),
            Some(&glass_cookie),
            Some(&glass_csrf),
        )
        .await;
    assert!(out.status < 300, "{:?}", out.body);
    let (status, ended) = get(&format!("{fhir}/Patient/pt-theirs"), Some(&glass_token)).await;
    assert_eq!(status, 401, "{ended}");
    platform.stop().await;
}
