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
    if !url.starts_with("https://") {
        return Ok(Endpoint::plain(url));
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

/// A gRPC channel to `endpoint`.
pub(crate) async fn connect(
    endpoint: &vitalgate_rpc::tls::Endpoint,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
    Ok(endpoint.channel().await?)
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
        .map_err(|e| format!("TTP CA certificate {}: {e}", ca_file.display()))?;
    let channel = vitalgate_rpc::ttp_channel(url, &ca, None)
        .await
        .map_err(|e| format!("cannot reach the TTP at {url}: {e}"))?;
    Ok(vitalgate_proto::v1::ttp_client::TtpClient::new(channel))
}

/// A request carrying the administrator's bearer token.
pub(crate) fn admin_request<T>(
    message: T,
    admin_token: &str,
) -> Result<tonic::Request<T>, Box<dyn std::error::Error + Send + Sync>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {admin_token}").parse()?);
    Ok(request)
}
