//! The generated gRPC service: wire types in, domain calls out.

use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use vitalgate_proto::v1;

use crate::factors::FactorFailure;
use crate::{login, Hsp};

/// The status for a factor that was not proven (the HSP's one mapping of
/// factor failures to gRPC; the portal's to HTTP is in `portal/error.rs`).
pub(crate) fn factor_status(failure: &FactorFailure) -> Status {
    let message = failure.to_string();
    match failure {
        FactorFailure::NotAllowed(_) => Status::permission_denied(message),
        FactorFailure::Malformed(_) => Status::invalid_argument(message),
        FactorFailure::Refused { .. }
        | FactorFailure::Reused { .. }
        | FactorFailure::NotEnrolled { .. } => Status::unauthenticated(message),
        FactorFailure::Throttled { .. } => Status::resource_exhausted(message),
        FactorFailure::Disabled => Status::failed_precondition(message),
        FactorFailure::Unavailable(_) => Status::failed_precondition(message),
        FactorFailure::Unreadable(_) => Status::data_loss(message),
        FactorFailure::Store(e) => vitalgate_rpc::store_status(e),
    }
}

type FrameStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::HspFrame, Status>> + Send>>;
type DatagramStream =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<v1::Datagram, Status>> + Send>>;

#[tonic::async_trait]
impl v1::hsp_server::Hsp for Hsp {
    type DeviceSessionStream = FrameStream;
    type DeviceDatagramsStream = DatagramStream;
    type HubSessionStream = FrameStream;
    type LoginStream = FrameStream;

    async fn login(
        &self,
        request: Request<tonic::Streaming<v1::DeviceFrame>>,
    ) -> Result<Response<Self::LoginStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let metadata = request.metadata().clone();
        let inbound = Box::pin(request.into_inner());
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let hsp = self.clone();
        // The login and the session run in the call's span (see vitalgate_rpc::trace_context).
        tokio::spawn(
            async move { login::run(hsp, metadata, inbound, tx, peer).await }.in_current_span(),
        );
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn issue_factor_token(
        &self,
        request: Request<v1::IssueFactorTokenRequest>,
    ) -> Result<Response<v1::IssueFactorTokenResponse>, Status> {
        Hsp::issue_factor_token(self, request).await
    }

    async fn start_password_registration(
        &self,
        request: Request<v1::StartPasswordRegistrationRequest>,
    ) -> Result<Response<v1::StartPasswordRegistrationResponse>, Status> {
        Hsp::start_password_registration(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn finish_password_registration(
        &self,
        request: Request<v1::FinishPasswordRegistrationRequest>,
    ) -> Result<Response<v1::FinishPasswordRegistrationResponse>, Status> {
        Hsp::finish_password_registration(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn enroll_otp(
        &self,
        request: Request<v1::EnrollOtpRequest>,
    ) -> Result<Response<v1::EnrollOtpResponse>, Status> {
        Hsp::enroll_otp(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn enroll_biometric(
        &self,
        request: Request<v1::EnrollBiometricRequest>,
    ) -> Result<Response<v1::EnrollBiometricResponse>, Status> {
        Hsp::enroll_biometric(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn set_code_address(
        &self,
        request: Request<v1::SetCodeAddressRequest>,
    ) -> Result<Response<v1::SetCodeAddressResponse>, Status> {
        Hsp::set_code_address(self, request).await
    }

    async fn recover_device(
        &self,
        request: Request<v1::RecoverDeviceRequest>,
    ) -> Result<Response<v1::RecoverDeviceResponse>, Status> {
        Hsp::recover_device(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn device_session(
        &self,
        request: Request<tonic::Streaming<v1::DeviceFrame>>,
    ) -> Result<Response<Self::DeviceSessionStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        Ok(Response::new(Box::pin(
            self.device_session_frames(request.into_inner(), peer),
        )))
    }

    async fn device_datagrams(
        &self,
        request: Request<tonic::Streaming<v1::Datagram>>,
    ) -> Result<Response<Self::DeviceDatagramsStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        Ok(Response::new(Box::pin(
            self.device_datagrams(request.into_inner(), peer),
        )))
    }

    async fn hub_session(
        &self,
        request: Request<tonic::Streaming<v1::DeviceFrame>>,
    ) -> Result<Response<Self::HubSessionStream>, Status> {
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        Ok(Response::new(Box::pin(
            self.hub_session_frames(request.into_inner(), peer),
        )))
    }

    async fn vitals_count(
        &self,
        request: Request<v1::VitalsCountRequest>,
    ) -> Result<Response<v1::VitalsCountResponse>, Status> {
        Hsp::vitals_count(self, request).await
    }

    async fn put_patient(
        &self,
        request: Request<v1::PutPatientRequest>,
    ) -> Result<Response<v1::PutPatientResponse>, Status> {
        Hsp::put_patient(self, request).await
    }

    async fn get_patient(
        &self,
        request: Request<v1::GetPatientRequest>,
    ) -> Result<Response<v1::GetPatientResponse>, Status> {
        Hsp::get_patient(self, request).await
    }

    async fn bind_device(
        &self,
        request: Request<v1::BindDeviceRequest>,
    ) -> Result<Response<v1::BindDeviceResponse>, Status> {
        Hsp::bind_device(self, request).await
    }

    async fn unbind_device(
        &self,
        request: Request<v1::UnbindDeviceRequest>,
    ) -> Result<Response<v1::UnbindDeviceResponse>, Status> {
        Hsp::unbind_device(self, request).await
    }

    async fn designate_relay(
        &self,
        request: Request<v1::DesignateRelayRequest>,
    ) -> Result<Response<v1::DesignateRelayResponse>, Status> {
        Hsp::designate_relay(self, request).await
    }

    async fn set_care_team_member(
        &self,
        request: Request<v1::SetCareTeamMemberRequest>,
    ) -> Result<Response<v1::SetCareTeamMemberResponse>, Status> {
        Hsp::set_care_team_member(self, request).await
    }

    async fn set_on_call(
        &self,
        request: Request<v1::SetOnCallRequest>,
    ) -> Result<Response<v1::SetOnCallResponse>, Status> {
        Hsp::set_on_call(self, request).await
    }

    async fn set_patient_settings(
        &self,
        request: Request<v1::SetPatientSettingsRequest>,
    ) -> Result<Response<v1::SetPatientSettingsResponse>, Status> {
        Hsp::set_patient_settings(self, request).await
    }

    async fn discharge_patient(
        &self,
        request: Request<v1::DischargePatientRequest>,
    ) -> Result<Response<v1::DischargePatientResponse>, Status> {
        Hsp::discharge_patient(self, request).await
    }
}

/// The HSP's service with every method but the device sessions refused: what a
/// port without TLS may carry (a device's session is end-to-end already;
/// administrators' tokens and clinicians' tickets are not).
#[derive(Clone)]
pub(crate) struct DevicesOnly<S>(S);

impl<S> DevicesOnly<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self(inner)
    }
}

/// The methods a plaintext port serves.
const DEVICE_PATHS: [&str; 3] = [
    "/vitalgate.v1.Hsp/DeviceSession",
    "/vitalgate.v1.Hsp/DeviceDatagrams",
    "/vitalgate.v1.Hsp/HubSession",
];

impl<S, B> tower_service::Service<tonic::codegen::http::Request<B>> for DevicesOnly<S>
where
    S: tower_service::Service<
            tonic::codegen::http::Request<B>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: tonic::codegen::http::Request<B>) -> Self::Future {
        if DEVICE_PATHS.contains(&request.uri().path()) {
            Box::pin(self.0.call(request))
        } else {
            let refused = Status::permission_denied(
                "this port carries device sessions only; administrators and clinicians use the \
                 HSP's TLS port",
            );
            Box::pin(async move { Ok(refused.into_http()) })
        }
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for DevicesOnly<S> {
    const NAME: &'static str = S::NAME;
}
