//! Batch payloads on the wire: an `EventBatch` built from stored event
//! encodings, compressed with the codec both sides agreed at Hello.
//!
//! ```text
//! payload = compress( EventBatch { repeated Event events = 1 } )
//! ```
//!
//! Stored events are already canonical `Event` encodings, so a batch is
//! assembled by framing those bytes as field 1 — no decode/re-encode on the
//! sending side.

use std::cell::RefCell;
use std::io::{Read, Write};

use prost::Message as _;

use crate::proto::v1::{self, Compression};
use crate::proto::wire;

/// Refuse to inflate a payload beyond this: a small compressed batch must not
/// become a memory bomb.
pub const MAX_INFLATED_BYTES: usize = 64 * 1024 * 1024;

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("compression {0} is not supported")]
    Unsupported(i32),
    #[error("payload inflates beyond {MAX_INFLATED_BYTES} bytes")]
    TooLarge,
    #[error("decompress payload")]
    Io(#[from] std::io::Error),
    #[error("event batch ends inside an event")]
    Truncated,
    #[error("decode event batch")]
    Decode(#[from] prost::DecodeError),
}

/// Our preference order when the peer offers several.
pub const PREFERENCE: [Compression; 3] = [Compression::Zstd, Compression::Gzip, Compression::None];

/// Picks the first of our preferences that the peer offers.
pub fn negotiate(offered: &[i32]) -> Compression {
    PREFERENCE
        .into_iter()
        .find(|c| offered.contains(&(*c as i32)))
        .unwrap_or(Compression::None)
}

/// Frames encoded events as an `EventBatch`.
pub fn frame_events<'a>(events: impl IntoIterator<Item = &'a [u8]> + Clone) -> Vec<u8> {
    // One allocation of the exact size (a key byte and at most a 10-byte
    // length per event), not a doubling series of copies.
    let size: usize = events.clone().into_iter().map(|e| e.len() + 11).sum();
    let mut out = Vec::with_capacity(size);
    for e in events {
        wire::put_event_record(&mut out, e);
    }
    out
}

/// Level 1, zstd's fastest regular level. On a node's first 1 MB batch it
/// compresses 7–17 % faster than the default level 3 for 6 % more bytes
/// (314–345 against 292–294 MB/s, ratio 3.79 against 4.03; the command is
/// in docs/benchmarks.md); at 342 B per complaint the wire stays far under
/// half the JSON size.
const ZSTD_LEVEL: i32 = 1;

/// Largest ratio of a frame's stated size to its compressed size that is
/// inflated in one allocation of the stated size. Complaint batches run at
/// about 4:1; a frame claiming more is inflated by the streaming path, which
/// grows its buffer only as the bytes really come, so a small payload that
/// merely claims a large size cannot make us allocate it.
const MAX_TRUSTED_RATIO: usize = 64;

thread_local! {
    // zstd contexts are costly to set up (tables of a few hundred KiB each);
    // each runtime thread keeps one of each and reuses it batch after batch.
    static ZSTD_COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
    // The compressor's output buffer, kept: a fresh megabyte per batch is
    // fresh pages for the kernel to fault in and zero every time.
    static ZSTD_OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn zstd_compress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    ZSTD_COMPRESSOR.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some(c) => c,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        ZSTD_OUT.with_borrow_mut(|out| {
            out.clear();
            out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
            compressor.compress_to_buffer(raw, out)?;
            Ok(out.as_slice().to_vec())
        })
    })
}

/// Inflates a zstd payload whose frames all state their size into `out`,
/// reserving exactly that size; `None` when the streaming path must do it
/// (a size not stated, or not believable).
fn zstd_decompress_sized(payload: &[u8], out: &mut Vec<u8>) -> Option<Result<(), CodecError>> {
    let size = zstd::bulk::Decompressor::upper_bound(payload)?;
    if size > MAX_INFLATED_BYTES {
        return Some(Err(CodecError::TooLarge));
    }
    if size > payload.len().saturating_mul(MAX_TRUSTED_RATIO) {
        return None;
    }
    Some(ZSTD_DECOMPRESSOR.with_borrow_mut(|slot| {
        let decompressor = match slot {
            Some(d) => d,
            None => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        out.reserve(size);
        decompressor.decompress_to_buffer(payload, out)?;
        Ok(())
    }))
}

pub fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Compression::Unspecified | Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => Ok(zstd_compress(raw)?),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(raw)?;
            Ok(enc.finish()?)
        }
    }
}

pub fn decompress(codec: i32, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    decompress_into(codec, payload, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (cleared first), so a caller that inflates
/// batch after batch reuses one buffer.
pub fn decompress_into(codec: i32, payload: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.clear();
    let codec = Compression::try_from(codec).map_err(|_| CodecError::Unsupported(codec))?;
    let reader: Box<dyn Read + '_> = match codec {
        Compression::Unspecified | Compression::None => {
            bounded(payload.len())?;
            out.extend_from_slice(payload);
            return Ok(());
        }
        Compression::Zstd => {
            if let Some(inflated) = zstd_decompress_sized(payload, out) {
                return inflated;
            }
            Box::new(zstd::stream::read::Decoder::new(payload)?)
        }
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(payload)),
    };
    reader
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(out)?;
    bounded(out.len())
}

fn bounded(n: usize) -> Result<(), CodecError> {
    if n > MAX_INFLATED_BYTES {
        Err(CodecError::TooLarge)
    } else {
        Ok(())
    }
}

/// A decompressed batch and its events, each with where it lies in `raw`.
pub struct DecodedEvents {
    pub raw: Vec<u8>,
    pub events: Vec<(v1::Event, std::ops::Range<usize>)>,
}

/// Decompresses a batch payload and decodes each event, keeping where in
/// the inflated bytes each came from: a record that is refused can be
/// quarantined as it came, without encoding it again or copying every
/// accepted one to keep a spare.
pub fn decode_events(codec: i32, payload: &[u8]) -> Result<DecodedEvents, CodecError> {
    let mut raw = Vec::new();
    let events = decode_events_into(codec, payload, &mut raw, 0)?;
    Ok(DecodedEvents { raw, events })
}

/// Most events a batch's stated count makes room for before decoding.
const MAX_EXPECTED_EVENTS: usize = 10_000;

/// [`decode_events`] with the inflated bytes in `raw` (cleared first), a
/// buffer the caller reuses from batch to batch. `expected` is how many
/// events the sender says the batch holds: room for that many (up to
/// [`MAX_EXPECTED_EVENTS`], whatever a peer claims) is made once, instead
/// of growing the list by doubling, a copy of every decoded event each time.
pub fn decode_events_into(
    codec: i32,
    payload: &[u8],
    raw: &mut Vec<u8>,
    expected: usize,
) -> Result<Vec<(v1::Event, std::ops::Range<usize>)>, CodecError> {
    decompress_into(codec, payload, raw)?;
    let mut buf = raw.as_slice();
    let mut events = Vec::with_capacity(expected.min(MAX_EXPECTED_EVENTS));
    let ctx = prost::encoding::DecodeContext::default();
    while !buf.is_empty() {
        let (tag, wire_type) = prost::encoding::decode_key(&mut buf)?;
        if tag == 1 && wire_type == prost::encoding::WireType::LengthDelimited {
            let len = prost::encoding::decode_varint(&mut buf)?;
            let len = usize::try_from(len)
                .ok()
                .filter(|&l| l <= buf.len())
                .ok_or(CodecError::Truncated)?;
            let start = raw.len() - buf.len();
            let (bytes, rest) = buf.split_at(len);
            events.push((v1::Event::decode(bytes)?, start..start + len));
            buf = rest;
        } else {
            // A field a later EventBatch may add: skipped, as prost would.
            prost::encoding::skip_field(wire_type, tag, &mut buf, ctx.clone())?;
        }
    }
    Ok(events)
}

/// Decompresses and decodes a batch payload.
pub fn decode_batch(codec: i32, payload: &[u8]) -> Result<v1::EventBatch, CodecError> {
    let raw = decompress(codec, payload)?;
    Ok(v1::EventBatch::decode(raw.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Vec<u8>> {
        (0..20)
            .map(|i| {
                v1::Event {
                    event_id: format!("e{i}"),
                    actor: "petugas".into(),
                    hlc: i,
                    ..Default::default()
                }
                .encode_to_vec()
            })
            .collect()
    }

    #[test]
    fn framed_events_decode_as_an_event_batch_under_every_codec() {
        let events = sample();
        let raw = frame_events(events.iter().map(Vec::as_slice));
        for codec in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let payload = compress(codec, &raw).unwrap();
            let batch = decode_batch(codec as i32, &payload).unwrap();
            assert_eq!(batch.events.len(), 20);
            assert_eq!(batch.events[3].event_id, "e3");
        }
    }

    #[test]
    fn events_decode_one_by_one_with_the_bytes_they_came_as() {
        let events = sample();
        let raw = frame_events(events.iter().map(Vec::as_slice));
        let payload = compress(Compression::Zstd, &raw).unwrap();
        let decoded = decode_events(Compression::Zstd as i32, &payload).unwrap();
        assert_eq!(decoded.events.len(), 20);
        for (i, (event, at)) in decoded.events.iter().enumerate() {
            assert_eq!(event.event_id, format!("e{i}"));
            assert_eq!(&decoded.raw[at.clone()], events[i].as_slice());
        }
        // The same answer as decoding the whole batch.
        let whole = decode_batch(Compression::Zstd as i32, &payload).unwrap();
        let one_by_one: Vec<_> = decoded.events.into_iter().map(|(e, _)| e).collect();
        assert_eq!(whole.events, one_by_one);
    }

    #[test]
    fn a_truncated_or_unknown_field_batch_is_handled_like_a_whole_decode() {
        let events = sample();
        let mut raw = frame_events(events.iter().map(Vec::as_slice));
        // An unknown varint field (tag 7) is skipped.
        raw.extend_from_slice(&[7 << 3, 42]);
        let decoded = decode_events(Compression::None as i32, &raw).unwrap();
        assert_eq!(decoded.events.len(), 20);
        // Cut inside the last event: an error, not a short batch.
        let cut = &raw[..raw.len() - 5];
        assert!(decode_events(Compression::None as i32, cut).is_err());
        assert!(decode_batch(Compression::None as i32, cut).is_err());
    }

    #[test]
    fn negotiation_prefers_zstd_and_falls_back_to_none() {
        assert_eq!(
            negotiate(&[Compression::Gzip as i32, Compression::Zstd as i32]),
            Compression::Zstd
        );
        assert_eq!(negotiate(&[Compression::Gzip as i32]), Compression::Gzip);
        assert_eq!(negotiate(&[]), Compression::None);
    }

    #[test]
    fn an_unknown_codec_and_a_decompression_bomb_are_refused() {
        assert!(matches!(
            decompress(99, b"x"),
            Err(CodecError::Unsupported(99))
        ));
        let bomb = compress(Compression::Zstd, &vec![0u8; MAX_INFLATED_BYTES + 10]).unwrap();
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decompress(Compression::Zstd as i32, &bomb),
            Err(CodecError::TooLarge)
        ));
    }

    #[test]
    fn zstd_frames_with_and_without_a_stated_size_inflate_alike() {
        let raw = frame_events(sample().iter().map(Vec::as_slice));
        // Ours state their size and take the one-allocation path; the
        // thread's reused contexts give the same bytes every time.
        let sized = compress(Compression::Zstd, &raw).unwrap();
        assert_eq!(sized, compress(Compression::Zstd, &raw).unwrap());
        assert!(zstd_decompress_sized(&sized, &mut Vec::new()).is_some());
        assert_eq!(decompress(Compression::Zstd as i32, &sized).unwrap(), raw);
        // Another implementation's streaming encoder may state no size.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&raw).unwrap();
        let unsized_frame = enc.finish().unwrap();
        assert!(zstd_decompress_sized(&unsized_frame, &mut Vec::new()).is_none());
        assert_eq!(
            decompress(Compression::Zstd as i32, &unsized_frame).unwrap(),
            raw
        );
        // A frame stating a size far beyond its own bytes (here 8 MiB of
        // zeros, honestly) is inflated as it streams, not allocated up front.
        let zeros = vec![0u8; 8 << 20];
        let claim = compress(Compression::Zstd, &zeros).unwrap();
        assert!(zstd_decompress_sized(&claim, &mut Vec::new()).is_none());
        assert_eq!(decompress(Compression::Zstd as i32, &claim).unwrap(), zeros);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(decode_batch(Compression::Zstd as i32, b"not zstd").is_err());
        assert!(
            decode_batch(
                Compression::None as i32,
                &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]
            )
            .is_err()
        );
    }
}
