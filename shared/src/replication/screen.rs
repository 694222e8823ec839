//! Received records, both halves: each decoded event is validated into the
//! domain, checked against the sender's scope, and either kept or refused
//! as the bytes it came as (quarantined by the store, sealed: it may carry
//! identity). A refused record never holds up the records behind it.

use std::ops::Range;

use crate::domain::Event;
use crate::proto::{convert, v1};
use crate::store::QuarantineRecord;

/// A refused record: why (with the gRPC code the sender is told) and what.
pub(super) struct Refused {
    pub code: tonic::Code,
    pub record: QuarantineRecord,
}

/// What a batch held: events that passed, each with its index in the batch,
/// and the records refused.
pub(super) struct Screened {
    pub accepted: Vec<(usize, Event)>,
    pub refused: Vec<Refused>,
}

/// Validates each of `decoded` (events framed in `raw`) and applies `check`
/// to the ones that are valid. Invalid records are refused with
/// INVALID_ARGUMENT; `check` says the code and reason of its own refusals.
pub(super) fn screen(
    decoded: Vec<(v1::Event, Range<usize>)>,
    raw: &[u8],
    check: impl Fn(&Event) -> Result<(), (tonic::Code, String)>,
) -> Screened {
    let mut out = Screened {
        accepted: Vec::with_capacity(decoded.len()),
        refused: Vec::new(),
    };
    for (i, (proto, at)) in decoded.into_iter().enumerate() {
        let event_id = Some(proto.event_id.clone()).filter(|s| !s.is_empty());
        let checked = convert::event_from_proto(proto)
            .map_err(|v| (tonic::Code::InvalidArgument, v.to_string()))
            .and_then(|e| check(&e).map(|()| e));
        match checked {
            Ok(event) => out.accepted.push((i, event)),
            Err((code, reason)) => out.refused.push(Refused {
                code,
                record: QuarantineRecord {
                    event_id,
                    payload: raw.get(at).unwrap_or_default().to_vec(),
                    reason,
                },
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::domain::{ComplaintId, EventBody, EventId, SiteCode};
    use crate::hlc::Hlc;
    use crate::replication::codec;

    fn commented(id: EventId) -> v1::Event {
        convert::event_to_proto(&Event {
            id,
            complaint_id: ComplaintId::new_v7(),
            origin: SiteCode::parse("11.13").unwrap(),
            hlc: Hlc(1),
            actor: "petugas".into(),
            district: SiteCode::parse("11.13").unwrap(),
            body: EventBody::Commented { body: "x".into() },
        })
    }

    #[test]
    fn invalid_and_refused_records_are_kept_as_they_came_and_the_rest_pass_in_order() {
        let ids = [EventId::new_v7(), EventId::new_v7(), EventId::new_v7()];
        let events = [
            commented(ids[0]),
            v1::Event {
                event_id: "not-a-uuid".into(),
                ..commented(EventId::new_v7())
            },
            commented(ids[1]),
            commented(ids[2]),
        ];
        let encoded: Vec<Vec<u8>> = events.iter().map(Message::encode_to_vec).collect();
        let raw = codec::frame_events(encoded.iter().map(Vec::as_slice));
        let decoded = codec::decode_events(v1::Compression::None as i32, &raw).unwrap();
        let refuse_last = |e: &Event| {
            if e.id == ids[2] {
                Err((tonic::Code::PermissionDenied, "not yours".to_string()))
            } else {
                Ok(())
            }
        };
        let out = screen(decoded.events, &decoded.raw, refuse_last);
        let kept: Vec<(usize, EventId)> = out.accepted.iter().map(|(i, e)| (*i, e.id)).collect();
        assert_eq!(kept, vec![(0, ids[0]), (2, ids[1])]);
        let refused: Vec<_> = out
            .refused
            .iter()
            .map(|r| (r.code, r.record.event_id.clone(), r.record.payload.clone()))
            .collect();
        assert_eq!(
            refused,
            vec![
                (
                    tonic::Code::InvalidArgument,
                    Some("not-a-uuid".to_string()),
                    encoded[1].clone()
                ),
                (
                    tonic::Code::PermissionDenied,
                    Some(ids[2].to_string()),
                    encoded[3].clone()
                ),
            ]
        );
        assert_eq!(out.refused[1].record.reason, "not yours");
    }
}
