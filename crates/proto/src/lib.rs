//! vitalgate's gRPC wire types and service stubs, `vitalgate.v1`.
//!
//! This is the only crate that knows prost and tonic's generated code; the
//! services convert to vitalgate-core's types at their edge.

#![forbid(unsafe_code)]
#![allow(missing_docs, unreachable_pub, clippy::unwrap_used)]

/// `vitalgate.v1`, generated from `proto/vitalgate/v1/*.proto`.
pub mod v1 {
    tonic::include_proto!("vitalgate.v1");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/vitalgate_descriptor.bin"));

/// Converts between the wire role and vitalgate-core's role number.
impl v1::Role {
    /// The role's number in vitalgate-core's credential encoding (1..=4), or
    /// `None` for `ROLE_UNSPECIFIED`.
    pub fn core_number(self) -> Option<u8> {
        match self {
            v1::Role::Unspecified => None,
            v1::Role::Device => Some(1),
            v1::Role::Hsp => Some(2),
            v1::Role::Clinician => Some(3),
            v1::Role::Ttp => Some(4),
        }
    }
}
