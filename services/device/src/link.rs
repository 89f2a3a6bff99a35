//! What a device's session with the HSP runs over: one stream of frames each
//! way per handshake. In service that is a gRPC call ([`HspLink`] for the
//! HSP's gRPC client); tests run the same session over memory, with the
//! HSP's own session code on the other end and no socket between (see
//! `tests/e2e/pair.rs`), so both exercise one implementation.

use std::future::Future;
use std::pin::Pin;

use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::Status;
use vitalgate_proto::v1;
use vitalgate_rpc::tls::Endpoint;

use crate::DeviceError;

/// The frames a device sends on one stream (a concrete type: tonic's
/// streaming call cannot be proved Send over a boxed `dyn Stream`).
pub type DeviceFrames = tokio_stream::wrappers::ReceiverStream<v1::DeviceFrame>;

/// Which of the HSP's handshake streams to open.
#[derive(Debug, Clone, Copy)]
pub enum HandshakeCall<'a> {
    /// `DeviceSession`: vitals follow the handshake.
    DeviceSession,
    /// `Login`, with the request's metadata (break-glass fields).
    Login(&'a tonic::metadata::MetadataMap),
}

/// A stream being opened: the HSP's frames once it answers.
pub type Opening<'a> = Pin<Box<dyn Future<Output = Result<HspFrames, Status>> + Send + 'a>>;

/// A way to reach the HSP: opens a handshake stream that carries `outbound`
/// and yields what the HSP answers.
pub trait HspLink: Send {
    /// Opens one stream of `call`.
    fn open<'a>(&'a mut self, call: HandshakeCall<'a>, outbound: DeviceFrames) -> Opening<'a>;
}

/// The gRPC link: the HSP's client over a TLS (or plaintext) channel.
impl HspLink for v1::hsp_client::HspClient<Channel> {
    fn open<'a>(&'a mut self, call: HandshakeCall<'a>, outbound: DeviceFrames) -> Opening<'a> {
        // The session's trace continues at the HSP (W3C trace context).
        let mut request = vitalgate_rpc::trace_context::request(outbound);
        let login = match call {
            HandshakeCall::DeviceSession => false,
            HandshakeCall::Login(metadata) => {
                // The call's own fields (break-glass), then the trace
                // context again, which replacing the metadata dropped.
                *request.metadata_mut() = metadata.clone();
                vitalgate_rpc::trace_context::inject(request.metadata_mut());
                true
            }
        };
        // A clone of the client (a handle on the same channel) keeps the
        // future free of borrows, which tonic's streaming call needs to be Send.
        let mut client = self.clone();
        Box::pin(async move {
            let inbound = match login {
                false => client.device_session(request).await?,
                true => client.login(request).await?,
            };
            Ok(HspFrames::new(inbound.into_inner()))
        })
    }
}

/// A gRPC client of the HSP at `endpoint`, for [`HspLink`].
pub async fn grpc_link(
    endpoint: &Endpoint,
) -> Result<v1::hsp_client::HspClient<Channel>, DeviceError> {
    let channel = endpoint.channel().await?;
    Ok(v1::hsp_client::HspClient::new(channel)
        .max_decoding_message_size(vitalgate_rpc::MAX_MESSAGE_BYTES))
}

/// The frames the HSP sends on one stream, whatever carries them.
pub struct HspFrames(Pin<Box<dyn Stream<Item = Result<v1::HspFrame, Status>> + Send>>);

impl HspFrames {
    /// Frames from any stream of them.
    pub fn new(frames: impl Stream<Item = Result<v1::HspFrame, Status>> + Send + 'static) -> Self {
        Self(Box::pin(frames))
    }

    /// The next frame; `None` when the HSP ended the stream without a status
    /// (as `tonic::Streaming::message`).
    pub async fn message(&mut self) -> Result<Option<v1::HspFrame>, Status> {
        self.0.next().await.transpose()
    }
}

impl std::fmt::Debug for HspFrames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HspFrames")
    }
}
