//! A small client of the portal's JSON API for tests that speak it without a
//! browser: OPAQUE with the crate the HSP uses, the code under the session
//! key's MAC, the session cookie carried by hand.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use rand_core::OsRng;
use vitalgate_password::ClientLogin;

/// What the portal answered: the status, the JSON body and any cookie set.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: serde_json::Value,
    /// The first cookie set (the session's, on a sign-in).
    pub(crate) set_cookie: Option<String>,
    /// Every cookie set, `name=value` only.
    pub(crate) cookies: Vec<String>,
}

impl Answer {
    /// The `name=value` part of the cookie the answer set.
    pub(crate) fn cookie(&self) -> Option<String> {
        self.set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(str::to_string)
    }

    pub(crate) fn field(&self, name: &str) -> Vec<u8> {
        let text = self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} in {:?}", self.body));
        URL_SAFE_NO_PAD.decode(text).expect("base64url")
    }
}

#[derive(Clone)]
pub(crate) struct PortalClient {
    http: Client<HttpConnector, Full<Bytes>>,
}

impl PortalClient {
    pub(crate) fn new() -> Self {
        Self {
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// POSTs `body` (GETs when `None`) to `url` with `cookie` and `csrf`.
    pub(crate) async fn call(
        &self,
        url: &str,
        body: Option<serde_json::Value>,
        cookie: Option<&str>,
        csrf: Option<&str>,
    ) -> Answer {
        let mut headers = Vec::new();
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf));
        }
        self.call_with(url, body, &headers).await
    }

    /// POSTs `body` (GETs when `None`) to `url` with these headers.
    pub(crate) async fn call_with(
        &self,
        url: &str,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = hyper::Request::builder().uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .method("POST")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string()))),
            None => request.method("GET").body(Full::new(Bytes::new())),
        }
        .expect("request");
        let response = self
            .http
            .request(request)
            .await
            .expect("the portal answers");
        let status = response.status().as_u16();
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .map(str::to_string)
            .collect();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            body,
            set_cookie,
            cookies,
        }
    }

    /// GETs a stream of server-sent events at `url` with `cookie`.
    pub(crate) async fn events(
        &self,
        url: &str,
        cookie: &str,
    ) -> hyper::Response<hyper::body::Incoming> {
        let request = hyper::Request::get(url)
            .header("cookie", cookie)
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.http
            .request(request)
            .await
            .expect("the portal answers")
    }

    /// OPAQUE's first step at `start_url`: the client state and the answer.
    pub(crate) async fn start(
        &self,
        start_url: &str,
        user: &str,
        password: &str,
    ) -> (ClientLogin, Answer) {
        let (state, ke1) = ClientLogin::start(password, &mut OsRng).expect("KE1");
        let body = serde_json::json!({ "username": user, "request": URL_SAFE_NO_PAD.encode(ke1) });
        let answer = self.call(start_url, Some(body), None, None).await;
        (state, answer)
    }

    /// The second step at `finish_url`: KE3 and `code` under the session key's MAC.
    pub(crate) async fn finish(
        &self,
        finish_url: &str,
        state: ClientLogin,
        started: &Answer,
        password: &str,
        code: &str,
    ) -> Answer {
        let body = finish_body(state, started, password, code);
        self.call(finish_url, Some(body), None, None).await
    }

    /// A break-glass access to `patient` from the signed-in session
    /// (`cookie`, `csrf`): the password again and a fresh `code`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn break_glass(
        &self,
        portal: &str,
        (cookie, csrf): (&str, &str),
        password: &str,
        patient: &str,
        reason: &str,
        code: impl FnOnce() -> String,
    ) -> Answer {
        let (state, ke1) = ClientLogin::start(password, &mut OsRng).expect("KE1");
        let body = serde_json::json!({
            "request": URL_SAFE_NO_PAD.encode(ke1),
            "patient": patient,
            "reason": reason,
        });
        let started = self
            .call(
                &format!("{portal}/api/break-glass/start"),
                Some(body),
                Some(cookie),
                Some(csrf),
            )
            .await;
        let body = finish_body(state, &started, password, &code());
        self.call(
            &format!("{portal}/api/break-glass/finish"),
            Some(body),
            Some(cookie),
            Some(csrf),
        )
        .await
    }

    /// Both steps of a sign-in at the portal `portal` with a fresh code
    /// (never the step `last` used); the answer carries the session.
    pub(crate) async fn sign_in(
        &self,
        portal: &str,
        user: &str,
        password: &str,
        (clock, totp): (&vitalgate_rpc::clock::ManualClock, &totp_rs::Totp),
        last: &mut Option<u64>,
    ) -> Answer {
        let (state, started) = self
            .start(&format!("{portal}/api/login/start"), user, password)
            .await;
        let code = crate::factors::fresh_code(clock, totp, last);
        self.finish(
            &format!("{portal}/api/login/finish"),
            state,
            &started,
            password,
            &code,
        )
        .await
    }
}

/// A sign-in's (or break-glass's) second step: KE3 and `code` under the
/// session key's MAC.
pub(crate) fn finish_body(
    state: ClientLogin,
    started: &Answer,
    password: &str,
    code: &str,
) -> serde_json::Value {
    assert_eq!(started.status, 200, "{:?}", started.body);
    let login = started.field("login");
    let (ke3, key) = state
        .finish(password, &started.field("response"), b"")
        .expect("the password opens KE2");
    let mac = vitalgate_hsp::portal_code_mac(key.as_bytes(), &login, code);
    serde_json::json!({
        "login": URL_SAFE_NO_PAD.encode(&login),
        "finish": URL_SAFE_NO_PAD.encode(ke3),
        "code": code,
        "mac": URL_SAFE_NO_PAD.encode(mac),
    })
}
