//! Editing canonical protobuf bytes without decoding them: just enough of
//! the wire format to append a field to a nested message.
//!
//! A site sends a non-anonymous Created event with its reporter put back
//! into `body.created.intake` (`store::identity::attach`). Decoding the
//! stored event into the domain and encoding it again to add one field cost
//! more than a third of a sender's CPU per identified complaint; appending
//! the field's bytes and rewriting three length prefixes gives the same
//! bytes (a property test holds the two equal).
//!
//! Only canonical input is edited: each message on the path must be the
//! last field of its parent, and the innermost message must hold only
//! fields numbered below the appended one, as prost writes them. Anything
//! else returns `None` and the caller takes the decoding path.

/// Wire type of length-delimited fields (strings, bytes, messages).
const LEN: u64 = 2;

/// `EventBatch.events`: the field each event of a batch is framed as.
const EVENT_BATCH_EVENTS: u32 = 1;

/// Appends the key and length prefix of one `EventBatch.events` record
/// whose `len` bytes follow.
fn put_event_header(out: &mut Vec<u8>, len: usize) {
    put_varint(out, key(EVENT_BATCH_EVENTS));
    put_varint(out, len as u64);
}

/// Appends `event` (an encoded `Event`) to `out` as one `EventBatch.events`
/// record; returns where the event's bytes lie in `out`.
pub(crate) fn put_event_record(out: &mut Vec<u8>, event: &[u8]) -> std::ops::Range<usize> {
    put_event_header(out, event.len());
    let start = out.len();
    out.extend_from_slice(event);
    start..out.len()
}

/// `msg` with field `field` (a length-delimited `value`) appended to the
/// message reached through `path`, a chain of message fields each of which
/// is the last field of its parent; `None` if `msg` is not shaped so.
pub(crate) fn append_nested(msg: &[u8], path: &[u32], field: u32, value: &[u8]) -> Option<Vec<u8>> {
    let splice = Splice::plan(msg, path, field, value)?;
    let mut out = Vec::with_capacity(splice.len());
    splice.write(&mut out);
    Some(out)
}

/// Deepest `path` a [`Splice`] edits (the reporter's is three long).
const MAX_DEPTH: usize = 4;

/// [`append_nested`] worked out before a byte is written, so a caller can
/// put the result's length ahead of it (`store::read::event_run` frames
/// each event into one batch buffer) and write it where it goes.
pub(crate) struct Splice<'a> {
    msg: &'a [u8],
    field: u32,
    value: &'a [u8],
    /// Each message on the path: (offset of its length prefix in `msg`,
    /// offset of its payload, its new length).
    levels: [(usize, usize, usize); MAX_DEPTH],
    depth: usize,
    len: usize,
}

impl<'a> Splice<'a> {
    /// `None` if `msg` is not shaped as [`append_nested`] requires (or
    /// `path` is deeper than [`MAX_DEPTH`]).
    pub(crate) fn plan(
        msg: &'a [u8],
        path: &[u32],
        field: u32,
        value: &'a [u8],
    ) -> Option<Splice<'a>> {
        if path.len() > MAX_DEPTH {
            return None;
        }
        // (offset of its length prefix, offset of its payload, old length).
        let mut levels = [(0usize, 0usize, 0usize); MAX_DEPTH];
        let mut start = 0usize;
        let mut end = msg.len();
        for (level, &number) in levels.iter_mut().zip(path) {
            let last = last_field(msg.get(start..end)?)?;
            if last.number != u64::from(number) || last.wire_type != LEN {
                return None;
            }
            *level = (start + last.len_at, start + last.payload_at, last.len);
            start += last.payload_at;
            end = start + last.len;
        }
        if end != msg.len() || !fields_below(msg.get(start..end)?, field)? {
            return None;
        }
        let appended = varint_len(key(field)) + varint_len(value.len() as u64) + value.len();
        // New lengths from the innermost message out: each grows by what it
        // holds more, including the growth of its child's length prefix.
        let mut grown = appended;
        for level in levels[..path.len()].iter_mut().rev() {
            let (len_at, payload_at, old) = *level;
            let new = old + grown;
            grown = (grown + varint_len(new as u64)).checked_sub(payload_at - len_at)?;
            level.2 = new;
        }
        Some(Splice {
            msg,
            field,
            value,
            levels,
            depth: path.len(),
            len: msg.len() + grown,
        })
    }

    /// Bytes [`Splice::write`] appends.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends the edited message to `out` as one `EventBatch.events`
    /// record ([`put_event_record`]'s framing); returns where the message
    /// lies in `out`.
    pub(crate) fn write_event_record(&self, out: &mut Vec<u8>) -> std::ops::Range<usize> {
        put_event_header(out, self.len);
        let start = out.len();
        self.write(out);
        start..out.len()
    }

    /// Appends the edited message to `out`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.reserve(self.len);
        let mut copied = 0usize;
        for &(len_at, payload_at, new) in &self.levels[..self.depth] {
            // Everything before this field's length prefix (preceding
            // fields, then its key), then the new length.
            out.extend_from_slice(&self.msg[copied..len_at]);
            put_varint(out, new as u64);
            copied = payload_at;
        }
        out.extend_from_slice(&self.msg[copied..]);
        put_varint(out, key(self.field));
        put_varint(out, self.value.len() as u64);
        out.extend_from_slice(self.value);
    }
}

/// The last field of a message.
struct LastField {
    number: u64,
    wire_type: u64,
    /// Offsets within the message of its length prefix and its payload.
    len_at: usize,
    payload_at: usize,
    /// Payload length (length-delimited fields only; 0 otherwise).
    len: usize,
}

/// The last field of `msg`, or `None` if `msg` is empty or malformed.
fn last_field(msg: &[u8]) -> Option<LastField> {
    let mut at = 0usize;
    let mut last = None;
    while at < msg.len() {
        let (key, n) = get_varint(&msg[at..])?;
        at += n;
        let len_at = at;
        let (number, wire_type) = (key >> 3, key & 7);
        let mut len = 0usize;
        match wire_type {
            0 => at += get_varint(&msg[at..])?.1,
            1 => at += 8,
            LEN => {
                let (l, n) = get_varint(&msg[at..])?;
                at += n;
                len = usize::try_from(l).ok()?;
            }
            5 => at += 4,
            _ => return None,
        }
        let payload_at = at;
        at = at.checked_add(len)?;
        if number == 0 || at > msg.len() {
            return None;
        }
        last = Some(LastField {
            number,
            wire_type,
            len_at,
            payload_at,
            len,
        });
    }
    last
}

/// Whether every field of `msg` is numbered below `field` (`None` if `msg`
/// is malformed).
fn fields_below(msg: &[u8], field: u32) -> Option<bool> {
    let mut at = 0usize;
    while at < msg.len() {
        let (key, n) = get_varint(&msg[at..])?;
        at += n;
        if key >> 3 >= u64::from(field) {
            return Some(false);
        }
        match key & 7 {
            0 => at += get_varint(&msg[at..])?.1,
            1 => at += 8,
            LEN => {
                let (l, n) = get_varint(&msg[at..])?;
                at = at.checked_add(n)?.checked_add(usize::try_from(l).ok()?)?;
            }
            5 => at += 4,
            _ => return None,
        }
    }
    (at == msg.len()).then_some(true)
}

fn key(field: u32) -> u64 {
    (u64::from(field) << 3) | LEN
}

/// A varint and the bytes it took; `None` if truncated or over ten bytes.
fn get_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().take(10).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn varint_len(v: u64) -> usize {
    // One byte per started group of seven bits, at least one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;

    use super::*;
    use crate::proto::v1;

    fn intake(body: String) -> v1::ComplaintIntake {
        v1::ComplaintIntake {
            title: "Jalan rusak".into(),
            body,
            privacy: Some(v1::Privacy {
                is_anonymous: false,
                is_secret: true,
            }),
            ..Default::default()
        }
    }

    fn event(intake: v1::ComplaintIntake) -> v1::Event {
        v1::Event {
            event_id: "e".into(),
            hlc: 7,
            body: Some(v1::EventBody {
                kind: Some(v1::event_body::Kind::Created(v1::Created {
                    tracking_number: "t".into(),
                    intake: Some(intake),
                })),
            }),
            ..Default::default()
        }
    }

    fn reporter(name: String) -> v1::ReporterIdentity {
        v1::ReporterIdentity {
            name,
            nik: "1113015507900001".into(),
            ..Default::default()
        }
    }

    fn created_of(e: &mut v1::Event) -> Option<&mut v1::Created> {
        match e.body.as_mut()?.kind.as_mut()? {
            v1::event_body::Kind::Created(c) => Some(c),
            _ => None,
        }
    }

    /// The reporter appended to the encoded event's intake, by both ways.
    fn both_ways(body: String, name: String) -> (Option<Vec<u8>>, Vec<u8>) {
        let mut e = event(intake(body));
        let stripped = e.encode_to_vec();
        let r = reporter(name);
        let spliced = append_nested(&stripped, &[10, 1, 2], 9, &r.encode_to_vec());
        if let Some(i) = created_of(&mut e).and_then(|c| c.intake.as_mut()) {
            i.reporter = Some(r);
        }
        (spliced, e.encode_to_vec())
    }

    #[test]
    fn lengths_that_cross_a_varint_boundary_are_rewritten_wider() {
        // Bodies sized so that intake, created and body lengths go from one
        // to two bytes (127 -> 128+) and from two to three (16383 -> 16384+).
        for body in [100, 110, 120, 16_300, 16_340, 16_370] {
            let (spliced, whole) = both_ways("x".repeat(body), "Cut Meutia".into());
            assert_eq!(
                spliced.as_deref(),
                Some(whole.as_slice()),
                "body of {body} bytes"
            );
        }
    }

    #[test]
    fn input_not_in_the_expected_shape_is_left_to_the_decoding_path() {
        let r = reporter("Cut".into()).encode_to_vec();
        // A reporter already there: appending a second would not be canonical.
        let mut with = event(intake("isi".into()));
        if let Some(i) = created_of(&mut with).and_then(|c| c.intake.as_mut()) {
            i.reporter = Some(reporter("A".into()));
        }
        assert_eq!(
            append_nested(&with.encode_to_vec(), &[10, 1, 2], 9, &r),
            None
        );
        // Another body kind, a missing intake, truncated bytes, no body.
        let mut commented = event(intake("isi".into()));
        commented.body = Some(v1::EventBody {
            kind: Some(v1::event_body::Kind::Commented(v1::Commented {
                body: "b".into(),
            })),
        });
        assert_eq!(
            append_nested(&commented.encode_to_vec(), &[10, 1, 2], 9, &r),
            None
        );
        let mut bare = event(intake("isi".into()));
        if let Some(c) = created_of(&mut bare) {
            c.intake = None;
        }
        assert_eq!(
            append_nested(&bare.encode_to_vec(), &[10, 1, 2], 9, &r),
            None
        );
        let whole = event(intake("isi".into())).encode_to_vec();
        assert_eq!(
            append_nested(&whole[..whole.len() - 1], &[10, 1, 2], 9, &r),
            None
        );
        assert_eq!(append_nested(&[], &[10, 1, 2], 9, &r), None);
        // A path deeper than a splice keeps room for.
        assert!(Splice::plan(&whole, &[10, 1, 2, 1, 1], 9, &r).is_none());
    }

    proptest! {
        #[test]
        fn appending_equals_encoding_the_whole(body in ".{0,300}", name in ".{0,40}", huge in any::<bool>()) {
            let body = if huge { body.repeat(60) } else { body };
            let (spliced, whole) = both_ways(body, name);
            prop_assert_eq!(spliced, Some(whole));
        }

        #[test]
        fn a_planned_splice_is_as_long_as_it_says_and_appends_after_what_is_there(
            body in ".{0,300}",
            name in ".{0,40}",
            before in prop::collection::vec(any::<u8>(), 0..16),
        ) {
            let stripped = event(intake(body)).encode_to_vec();
            let r = reporter(name).encode_to_vec();
            let splice = Splice::plan(&stripped, &[10, 1, 2], 9, &r).unwrap();
            let mut out = before.clone();
            splice.write(&mut out);
            prop_assert_eq!(out.len(), before.len() + splice.len());
            prop_assert_eq!(&out[..before.len()], before.as_slice());
            let whole = append_nested(&stripped, &[10, 1, 2], 9, &r);
            prop_assert_eq!(Some(&out[before.len()..]), whole.as_deref());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = append_nested(&bytes, &[10, 1, 2], 9, b"r");
        }
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for v in [
            0u64,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, v);
            assert_eq!(varint_len(v), buf.len(), "{v}");
            assert_eq!(get_varint(&buf), Some((v, buf.len())));
        }
    }
}
