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

use std::io::{Read, Write};

use prost::Message as _;

use crate::proto::v1::{self, Compression};

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
pub fn frame_events<'a>(events: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for e in events {
        // Field 1, wire type 2 (length-delimited).
        out.push(0x0a);
        prost::encoding::encode_varint(e.len() as u64, &mut out);
        out.extend_from_slice(e);
    }
    out
}

/// Level 3 is zstd's default: most of the ratio at a fraction of the CPU
/// of higher levels, which matters on a district PC.
const ZSTD_LEVEL: i32 = 3;

pub fn compress(codec: Compression, raw: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Compression::Unspecified | Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => Ok(zstd::bulk::compress(raw, ZSTD_LEVEL)?),
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(raw)?;
            Ok(enc.finish()?)
        }
    }
}

pub fn decompress(codec: i32, payload: &[u8]) -> Result<Vec<u8>, CodecError> {
    let codec = Compression::try_from(codec).map_err(|_| CodecError::Unsupported(codec))?;
    let reader: Box<dyn Read + '_> = match codec {
        Compression::Unspecified | Compression::None => {
            return bounded(payload.len()).map(|_| payload.to_vec());
        }
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(payload)?),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(payload)),
    };
    let mut out = Vec::new();
    reader
        .take(MAX_INFLATED_BYTES as u64 + 1)
        .read_to_end(&mut out)?;
    bounded(out.len())?;
    Ok(out)
}

fn bounded(n: usize) -> Result<(), CodecError> {
    if n > MAX_INFLATED_BYTES {
        Err(CodecError::TooLarge)
    } else {
        Ok(())
    }
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
