//! Sample framing: the plaintext of the device's records and of the HSP's
//! acknowledgements.
//!
//! The bytes are the protobuf encoding of `vitalgate.v1.VitalsBatch` and
//! `vitalgate.v1.Ack` (proto/vitalgate/v1/hsp.proto), written and read here by
//! hand: two fixed messages do not justify a protobuf runtime on a
//! microcontroller. A test checks both against the proto crate byte for byte,
//! so the proto file stays the one definition.

use alloc::vec::Vec;

use vitalgate_core::factor::AssuranceLevel;
use vitalgate_core::provider::Secret32;
use vitalgate_core::resumption::TICKET_LEN;

use crate::lifecycle::AnchorStatement;
use crate::resume::Ticket;
use crate::SdkError;

/// One reading of the body-area network's sensors.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Per device, from 1, never reused (see [`crate::sequence`]).
    pub sequence: u64,
    /// Unix milliseconds when measured.
    pub measured_at_ms: i64,
    /// Heart rate, beats per minute.
    pub heart_rate_bpm: f32,
    /// Oxygen saturation, percent.
    pub spo2_percent: f32,
    /// Breaths per minute.
    pub respiratory_rate_per_min: f32,
    /// Skin temperature, degrees Celsius.
    pub skin_temperature_c: f32,
    /// Systolic blood pressure, mmHg.
    pub systolic_mmhg: f32,
    /// Diastolic blood pressure, mmHg.
    pub diastolic_mmhg: f32,
    /// The device's own flag: a reading outside its normal ranges.
    pub anomaly: bool,
}

/// The most bytes one sample takes in a batch (two 10-byte varints, six
/// floats, a flag, and its own tag and length).
pub const MAX_SAMPLE_FRAME_LEN: usize = 2 + (1 + 10) * 2 + 6 * 5 + 2;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

fn put_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn tag(field: u8, wire: u8) -> u8 {
    (field << 3) | wire
}

impl Sample {
    /// Appends the sample as a `VitalSample` message (fields at their default
    /// are left out, as protobuf encoders do).
    fn encode_fields(&self, out: &mut Vec<u8>) {
        if self.sequence != 0 {
            out.push(tag(1, WIRE_VARINT));
            put_varint(self.sequence, out);
        }
        if self.measured_at_ms != 0 {
            out.push(tag(2, WIRE_VARINT));
            // int64 is encoded as its two's complement, as protobuf says.
            put_varint(self.measured_at_ms as u64, out);
        }
        let floats = [
            self.heart_rate_bpm,
            self.spo2_percent,
            self.respiratory_rate_per_min,
            self.skin_temperature_c,
            self.systolic_mmhg,
            self.diastolic_mmhg,
        ];
        for (field, value) in (3u8..).zip(floats) {
            if value != 0.0 {
                out.push(tag(field, WIRE_FIXED32));
                out.extend_from_slice(&value.to_le_bytes());
            }
        }
        if self.anomaly {
            out.push(tag(9, WIRE_VARINT));
            out.push(1);
        }
    }
}

/// Encodes samples as one `VitalsBatch`, the plaintext of one record, into `out`
/// (cleared first, so one buffer serves every record).
pub fn encode_batch<'s>(samples: impl IntoIterator<Item = &'s Sample>, out: &mut Vec<u8>) {
    out.clear();
    let mut fields = Vec::with_capacity(MAX_SAMPLE_FRAME_LEN);
    for sample in samples {
        fields.clear();
        sample.encode_fields(&mut fields);
        out.push(tag(1, WIRE_LEN));
        put_varint(fields.len() as u64, out);
        out.extend_from_slice(&fields);
    }
}

/// Reads protobuf fields; refuses anything truncated or over-long.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, SdkError> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            // The tenth byte may only hold the top bit of a u64.
            if i == 9 && byte > 1 {
                return Err(SdkError::MalformedFrame);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        Err(SdkError::MalformedFrame)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], SdkError> {
        if len > self.bytes.len() {
            return Err(SdkError::MalformedFrame);
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn skip(&mut self, wire: u64) -> Result<(), SdkError> {
        match wire as u8 {
            WIRE_VARINT => self.varint().map(drop),
            WIRE_FIXED64 => self.take(8).map(drop),
            WIRE_LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| SdkError::MalformedFrame)?;
                self.take(len).map(drop)
            }
            WIRE_FIXED32 => self.take(4).map(drop),
            _ => Err(SdkError::MalformedFrame),
        }
    }
}

/// The sequences an HSP acknowledgement (`vitalgate.v1.Ack`) holds: checked
/// whole when parsed, so acting on it cannot stop halfway.
#[derive(Debug, Clone, Copy)]
pub struct AckSequences<'a> {
    bytes: &'a [u8],
}

impl<'a> AckSequences<'a> {
    /// Checks an acknowledgement's encoding (packed or not; unknown fields skipped).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, SdkError> {
        let ack = Self { bytes };
        for sequence in ack.walk() {
            sequence?;
        }
        Ok(ack)
    }

    /// The acknowledged sequence numbers, in the order the HSP sent them.
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        // `parse` walked the same bytes without an error.
        self.walk().filter_map(Result::ok)
    }

    fn walk(&self) -> impl Iterator<Item = Result<u64, SdkError>> + 'a {
        let mut outer = Reader { bytes: self.bytes };
        let mut packed = Reader { bytes: &[] };
        let mut failed = false;
        core::iter::from_fn(move || loop {
            if failed {
                return None;
            }
            if !packed.bytes.is_empty() {
                let value = packed.varint();
                failed = value.is_err();
                return Some(value);
            }
            if outer.bytes.is_empty() {
                return None;
            }
            let step = (|| {
                let key = outer.varint()?;
                match (key >> 3, (key & 7) as u8) {
                    (1, WIRE_VARINT) => return outer.varint().map(Some),
                    (1, WIRE_LEN) => {
                        let len = usize::try_from(outer.varint()?)
                            .map_err(|_| SdkError::MalformedFrame)?;
                        packed.bytes = outer.take(len)?;
                    }
                    (0, _) => return Err(SdkError::MalformedFrame),
                    (_, wire) => outer.skip(u64::from(wire))?,
                }
                Ok(None)
            })();
            match step {
                Ok(Some(value)) => return Some(Ok(value)),
                Ok(None) => continue,
                Err(e) => {
                    failed = true;
                    return Some(Err(e));
                }
            }
        })
    }
}

/// The resumption ticket an acknowledgement carries (`Ack.ticket`, field 3:
/// `ResumptionTicket`), if any; other fields are skipped. A ticket of the
/// wrong length or with an unknown assurance level is malformed.
pub fn ack_ticket(ack: &[u8]) -> Result<Option<Ticket>, SdkError> {
    let mut outer = Reader { bytes: ack };
    let mut found = None;
    while !outer.bytes.is_empty() {
        let key = outer.varint()?;
        match (key >> 3, (key & 7) as u8) {
            (3, WIRE_LEN) => {
                let len = usize::try_from(outer.varint()?).map_err(|_| SdkError::MalformedFrame)?;
                found = Some(parse_ticket(outer.take(len)?)?);
            }
            (0, _) => return Err(SdkError::MalformedFrame),
            (_, wire) => outer.skip(u64::from(wire))?,
        }
    }
    Ok(found)
}

fn parse_ticket(bytes: &[u8]) -> Result<Ticket, SdkError> {
    let mut fields = Reader { bytes };
    let (mut ticket, mut psk, mut assurance, mut valid_secs) = (None, None, None, 0u32);
    while !fields.bytes.is_empty() {
        let key = fields.varint()?;
        match (key >> 3, (key & 7) as u8) {
            (1 | 2, WIRE_LEN) => {
                let len =
                    usize::try_from(fields.varint()?).map_err(|_| SdkError::MalformedFrame)?;
                let value = fields.take(len)?;
                if key >> 3 == 1 {
                    ticket = Some(
                        <[u8; TICKET_LEN]>::try_from(value)
                            .map_err(|_| SdkError::MalformedFrame)?,
                    );
                } else {
                    psk = Some(<[u8; 32]>::try_from(value).map_err(|_| SdkError::MalformedFrame)?);
                }
            }
            (3, WIRE_VARINT) => {
                assurance = u8::try_from(fields.varint()?)
                    .ok()
                    .and_then(AssuranceLevel::from_wire);
            }
            (4, WIRE_VARINT) => {
                valid_secs =
                    u32::try_from(fields.varint()?).map_err(|_| SdkError::MalformedFrame)?;
            }
            (0, _) => return Err(SdkError::MalformedFrame),
            (_, wire) => fields.skip(u64::from(wire))?,
        }
    }
    match (ticket, psk, assurance) {
        (Some(ticket), Some(psk), Some(assurance)) => Ok(Ticket {
            ticket,
            psk: Secret32::from_bytes(psk),
            assurance,
            valid_secs,
        }),
        _ => Err(SdkError::MalformedFrame),
    }
}

/// The trust-anchor statements an acknowledgement carries
/// (`Ack.anchor_updates`, field 2: `AnchorUpdate`), oldest first; other
/// fields are skipped. A statement with a key, signer or signature of the
/// wrong length is malformed.
pub fn ack_anchor_statements(ack: &[u8]) -> Result<Vec<AnchorStatement>, SdkError> {
    let mut outer = Reader { bytes: ack };
    let mut statements = Vec::new();
    while !outer.bytes.is_empty() {
        let key = outer.varint()?;
        match (key >> 3, (key & 7) as u8) {
            (2, WIRE_LEN) => {
                let len = usize::try_from(outer.varint()?).map_err(|_| SdkError::MalformedFrame)?;
                statements.push(parse_statement(outer.take(len)?)?);
            }
            (0, _) => return Err(SdkError::MalformedFrame),
            (_, wire) => outer.skip(u64::from(wire))?,
        }
    }
    Ok(statements)
}

fn parse_statement(bytes: &[u8]) -> Result<AnchorStatement, SdkError> {
    let mut fields = Reader { bytes };
    let malformed = |_| SdkError::MalformedFrame;
    let (mut version, mut anchors, mut signer, mut signature) = (0u64, Vec::new(), None, None);
    while !fields.bytes.is_empty() {
        let key = fields.varint()?;
        match (key >> 3, (key & 7) as u8) {
            (1, WIRE_VARINT) => version = fields.varint()?,
            (field @ 2..=4, WIRE_LEN) => {
                let len =
                    usize::try_from(fields.varint()?).map_err(|_| SdkError::MalformedFrame)?;
                let value = fields.take(len)?;
                match field {
                    2 => anchors.push(<[u8; 32]>::try_from(value).map_err(malformed)?),
                    3 => signer = Some(<[u8; 32]>::try_from(value).map_err(malformed)?),
                    _ => signature = Some(<[u8; 64]>::try_from(value).map_err(malformed)?),
                }
            }
            (0, _) => return Err(SdkError::MalformedFrame),
            (_, wire) => fields.skip(u64::from(wire))?,
        }
    }
    match (signer, signature) {
        (Some(signer), Some(signature)) if !anchors.is_empty() => Ok(AnchorStatement {
            version,
            anchors,
            signer,
            signature,
        }),
        _ => Err(SdkError::MalformedFrame),
    }
}
