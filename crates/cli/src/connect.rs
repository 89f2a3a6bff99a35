//! Clients of the TTP and the HSP, as the commands use them.

/// A gRPC channel to `url` (`http://host:port`).
pub(crate) async fn connect(
    url: &str,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error + Send + Sync>> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?)
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
