//! The export request the span export thread sends: its spans are kept
//! from batch to batch (each batch is written over the last one's, see
//! [`Finished::write_into`]), and it is encoded with each span's length
//! worked out once.
//!
//! Why not `prost`'s `encode_to_vec` on a whole `ExportTraceServiceRequest`:
//! it works a nested message's length out again at every level that holds
//! it, and spans lie three levels down (the request, the resource's spans,
//! the scope's spans), so each span's length was worked out four times:
//! most of what encoding a batch cost. Here the parts above the spans,
//! which never change, are encoded once by `prost`, each span is encoded by
//! `prost` with its length in front, and only the two frames around the
//! spans are written here. A test holds the bytes to `prost`'s.

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::spans::Finished;

/// Field numbers in OTLP's protobuf: `ExportTraceServiceRequest.resource_spans`,
/// `ResourceSpans.resource`, `ResourceSpans.scope_spans`, `ScopeSpans.scope`
/// and `ScopeSpans.spans`.
const REQUEST_RESOURCE_SPANS: u8 = 1;
const RESOURCE_SPANS_RESOURCE: u8 = 1;
const RESOURCE_SPANS_SCOPE_SPANS: u8 = 2;
const SCOPE_SPANS_SCOPE: u8 = 1;
const SCOPE_SPANS_SPANS: u8 = 2;

/// The key of length-delimited field `number` (under 16, one byte):
/// the field's number, then protobuf's wire type 2.
const fn key(number: u8) -> u8 {
    (number << 3) | 2
}

/// One resource's and one scope's spans, as the export thread sends them.
pub(crate) struct Request {
    /// `ResourceSpans.resource`, encoded with its key and length.
    resource: Vec<u8>,
    /// `ScopeSpans.scope`, likewise.
    scope: Vec<u8>,
    /// The last batch's spans; the next batch is written over them.
    spans: Vec<Span>,
    /// Spans a bigger batch used, kept for the next.
    spare: Vec<Span>,
    /// The spans encoded, in a buffer kept from batch to batch.
    encoded_spans: Vec<u8>,
}

impl Request {
    /// A request for spans of `resource`, recorded by `scope`.
    pub(crate) fn new(resource: &Resource, scope: &InstrumentationScope) -> Self {
        Self {
            resource: field(RESOURCE_SPANS_RESOURCE, resource),
            scope: field(SCOPE_SPANS_SCOPE, scope),
            spans: Vec::new(),
            spare: Vec::new(),
            encoded_spans: Vec::new(),
        }
    }

    /// Makes `batch` the request's spans, written over the last batch's.
    pub(crate) fn write_batch(&mut self, batch: impl IntoIterator<Item = Finished>) {
        let spans = &mut self.spans;
        let mut written = 0;
        for finished in batch {
            if written == spans.len() {
                spans.push(self.spare.pop().unwrap_or_default());
            }
            finished.write_into(&mut spans[written]);
            written += 1;
        }
        if spans.len() > written {
            self.spare.extend(spans.drain(written..));
        }
    }

    /// The request in protobuf: the bytes `prost` encodes an
    /// `ExportTraceServiceRequest` with one `ResourceSpans` holding one
    /// `ScopeSpans` to (the module says why it is not `prost` alone).
    pub(crate) fn encode(&mut self) -> Vec<u8> {
        let spans = &mut self.encoded_spans;
        spans.clear();
        for span in &self.spans {
            spans.push(key(SCOPE_SPANS_SPANS));
            span.encode_length_delimited(spans)
                .expect("a Vec<u8> grows as it is written to");
        }
        let scope_spans = self.scope.len() + spans.len();
        let resource_spans = self.resource.len() + framed_len(scope_spans);
        let mut request = Vec::with_capacity(framed_len(resource_spans));
        frame(&mut request, REQUEST_RESOURCE_SPANS, resource_spans);
        request.extend_from_slice(&self.resource);
        frame(&mut request, RESOURCE_SPANS_SCOPE_SPANS, scope_spans);
        request.extend_from_slice(&self.scope);
        request.extend_from_slice(spans);
        request
    }
}

/// `message` as field `number` of the message holding it: key, length,
/// message.
fn field(number: u8, message: &impl prost::Message) -> Vec<u8> {
    let mut field = vec![key(number)];
    message
        .encode_length_delimited(&mut field)
        .expect("a Vec<u8> grows as it is written to");
    field
}

/// Starts field `number`, a message `len` bytes long, in `out`.
fn frame(out: &mut Vec<u8>, number: u8, len: usize) {
    out.push(key(number));
    prost::encode_length_delimiter(len, out).expect("a Vec<u8> grows as it is written to");
}

/// How long a field is whose message is `len` bytes long.
fn framed_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    use super::*;

    fn text(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..KeyValue::default()
        }
    }

    /// What `prost` makes of the request `encode` stands for.
    fn by_prost(resource: &Resource, scope: &InstrumentationScope, spans: &[Span]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope.clone()),
                    spans: spans.to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn the_request_is_encoded_as_prost_encodes_it() {
        let resource = Resource {
            attributes: vec![
                text("service.name", "vitalgate-hsp"),
                text("service.version", "0.1.0"),
            ],
            ..Resource::default()
        };
        let scope = InstrumentationScope {
            name: "vitalgate".into(),
            version: "0.1.0".into(),
            ..InstrumentationScope::default()
        };
        let mut request = Request::new(&resource, &scope);
        assert_eq!(
            request.encode(),
            by_prost(&resource, &scope, &[]),
            "no spans"
        );
        // Spans whose lengths take one, two and three bytes, in a request
        // whose length takes four.
        for count in [1, 2, 300] {
            request.write_batch((0..count).map(|_| Finished::default()));
            for (at, span) in request.spans.iter_mut().enumerate() {
                span.name = "s".repeat(at * 60);
                span.span_id = vec![7; 8];
                span.start_time_unix_nano = at as u64;
                span.attributes = vec![text("outcome", "acknowledged"); at % 3];
            }
            let encoded = request.encode();
            assert_eq!(
                encoded,
                by_prost(&resource, &scope, &request.spans),
                "{count} spans"
            );
            assert_eq!(
                ExportTraceServiceRequest::decode(encoded.as_slice())
                    .expect("it decodes")
                    .resource_spans[0]
                    .scope_spans[0]
                    .spans
                    .len(),
                count
            );
        }
        assert!(request.encode().len() > 1 << 21, "four bytes of length");
    }
}
