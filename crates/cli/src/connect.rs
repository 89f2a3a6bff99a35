//! Clients of the TTP and the HSP, as the commands use them.

/// Where the HSP is, for a command: its URL, and for `https://` the CA file
/// its certificate is checked against (the TTP's service CA by default)
/// and, for a hospital's own certificate, the DNS name it must carry
/// (without one, any HSP's SPIFFE ID from that CA).
pub(crate) fn hsp_endpoint(
    url: &str,
    ca_file: &std::path::Path,
    server_name: Option<&str>,
) -> Result<vitalgate_rpc::tls::Endpoint, Box<dyn std::error::Error + Send + Sync>> {
    use vitalgate_rpc::tls::{ClientTls, Endpoint, PeerName};
    if url.starts_with("http://") {
        return Ok(Endpoint::plain(url));
    }
    if !url.starts_with("https://") {
        return Err(format!(
            "the HSP's URL {url} must start with https:// (or http:// for an HSP started with --insecure-plaintext)"
        )
        .into());
    }
    let ca = std::fs::read_to_string(ca_file)
        .map_err(|e| format!("the HSP's CA certificate {}: {e}", ca_file.display()))?;
    let peer = match server_name {
        Some(name) => PeerName::Dns(name.to_string()),
        None => PeerName::any_hsp(),
    };
    let tls = ClientTls::new(&ca, peer, None)
        .map_err(|e| format!("the HSP's CA certificate {}: {e}", ca_file.display()))?;
    Ok(Endpoint::tls(url, tls))
}

/// A gRPC channel to `endpoint`, the HSP.
pub(crate) async fn connect(
    endpoint: &vitalgate_rpc::tls::Endpoint,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
    endpoint
        .channel()
        .await
        .map_err(|e| connect_error("the HSP", "vitalgate hsp", e).into())
}

/// One line for a connection that failed: the service and its URL, why, and
/// what to check.
fn connect_error(service: &str, command: &str, error: vitalgate_rpc::tls::ConnectError) -> String {
    use vitalgate_rpc::tls::ConnectError;
    match error {
        ConnectError::Scheme(url) => {
            format!("{service}'s URL {url} must start with https:// (vitalgate's ports speak TLS)")
        }
        ConnectError::Url(url, why) => format!("{service}'s URL {url}: {why}"),
        ConnectError::Unreachable(url, why) => {
            let hint = if why.contains("refused") {
                format!("; is {service} running there ({command})?")
            } else {
                String::new()
            };
            format!("cannot reach {service} at {url}: {why}{hint}")
        }
    }
}

/// A client of the TTP at `url` over TLS, trusting the CA certificate in `ca_file`.
pub(crate) async fn connect_ttp(
    url: &str,
    ca_file: &std::path::Path,
) -> Result<
    vitalgate_proto::v1::ttp_client::TtpClient<tonic::transport::Channel>,
    Box<dyn std::error::Error + Send + Sync>,
> {
    let ca = std::fs::read_to_string(ca_file)
        .map_err(|e| format!("the TTP's CA certificate {}: {e}", ca_file.display()))?;
    let channel = vitalgate_rpc::ttp_channel(url, &ca, None)
        .await
        .map_err(|e| match e {
            vitalgate_rpc::TtpConnectError::Connect(e) => {
                connect_error("the TTP", "vitalgate ttp", e)
            }
            other => format!("the TTP's CA certificate {}: {other}", ca_file.display()),
        })?;
    Ok(vitalgate_proto::v1::ttp_client::TtpClient::new(channel))
}

/// A request carrying the administrator's bearer token (and the command's
/// trace context, when it is traced).
pub(crate) fn admin_request<T>(
    message: T,
    admin_token: &str,
) -> Result<tonic::Request<T>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = vitalgate_rpc::trace_context::request(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin_token}").parse()?);
    Ok(request)
}
