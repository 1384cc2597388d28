//! `compression.type` on the produce path: a topic that names a codec stores every batch in
//! it, as Kafka does, recompressing a batch sent with another codec (`uncompressed`: none).
//!
//! Only the records region changes: the header keeps its offsets, producer id, epoch and
//! sequence, timestamps and the other attribute bits; the codec bits, the batch length and
//! the CRC are rewritten. Runs on the connection's core, before the batches travel to their
//! owner, so the owner's log still stores exactly what it is given.

use std::collections::BTreeMap;

use bytes::{BufMut, BytesMut};
use engine::batch::{self, Compression, ValidatedBatches, HEADER_BYTES, LOG_OVERHEAD};
use engine::records;

use crate::config::BrokerConfig;
use crate::errors::{batch_error, code};
use crate::handlers::config_defs;

/// The codec a `compression.type` value names (`None`: `producer`, batches stay as sent).
pub fn codec_of(compression_type: &str) -> Option<Compression> {
    match compression_type.trim() {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Kafka's default `compression.lz4.level`.
const LZ4_DEFAULT_LEVEL: i32 = 9;

/// The level the topic's codec compresses at: `compression.gzip.level` (-1: Deflater's
/// default 6, as Kafka), `compression.zstd.level`, or `compression.lz4.level` (`None` at
/// Kafka's default of 9, which is lz4's fast encoder there and here; see
/// [`records::compress_with_level`]).
pub fn level_of(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Option<i32> {
    let level = |name: &str| config_defs::effective_i64(broker, overrides, name).and_then(|v| i32::try_from(v).ok());
    let codec = config_defs::effective(broker, overrides, "compression.type").unwrap_or_default();
    match codec_of(&codec)? {
        Compression::Gzip => Some(level("compression.gzip.level").filter(|&l| l != -1).unwrap_or(6)),
        Compression::Zstd => level("compression.zstd.level"),
        Compression::Lz4 => level("compression.lz4.level").filter(|&l| l != LZ4_DEFAULT_LEVEL),
        _ => None,
    }
}

/// The batches with every one in `target`'s codec; batches already in it are copied as they
/// are. Fails as Kafka does: a batch whose records do not decompress is CORRUPT_MESSAGE, and
/// one that grows past `max_bytes` is refused as too large.
pub fn recompress(
    batches: ValidatedBatches,
    target: Compression,
    level: Option<i32>,
    max_bytes: usize,
) -> Result<ValidatedBatches, (i16, String)> {
    let all_in_target =
        batches.batches().iter().all(|m| Compression::from_attributes(m.attributes).is_ok_and(|c| c == target));
    if all_in_target {
        return Ok(batches);
    }
    let mut out = BytesMut::with_capacity(batches.len_bytes());
    for m in batches.batches() {
        let bytes = &batches.bytes()[m.position..m.position + m.size];
        let codec = Compression::from_attributes(m.attributes).map_err(|e| (batch_error(&e), e.to_string()))?;
        if codec == target {
            out.extend_from_slice(bytes);
            continue;
        }
        let plain = records::decompress(codec, &bytes[HEADER_BYTES..])
            .map_err(|e| (code::CORRUPT_MESSAGE, format!("cannot recompress a {codec:?} batch: {e}")))?;
        let body = records::compress_with_level(target, &plain, level);
        let length = i32::try_from(HEADER_BYTES - LOG_OVERHEAD + body.len())
            .map_err(|_| (code::MESSAGE_TOO_LARGE, "recompressed batch is too large".to_string()))?;
        let start = out.len();
        out.extend_from_slice(&bytes[..HEADER_BYTES]);
        out.put_slice(&body);
        let batch = &mut out[start..];
        batch[8..12].copy_from_slice(&length.to_be_bytes());
        let attributes = (m.attributes & !0x07) | target.attribute_bits();
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        let crc = batch::compute_crc(batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    ValidatedBatches::new(out, max_bytes).map_err(|e| (batch_error(&e), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::batch::BatchView;
    use engine::records::{BatchBuilder, Record};

    fn batch(codec: Compression) -> ValidatedBatches {
        let mut b = BatchBuilder::new(codec, 1_000).producer(42, 3, 17).transactional();
        for i in 0..20 {
            let r = Record::new(Some(format!("k{i}").into_bytes()), Some(vec![b'v'; 100 + i]))
                .with_timestamp(1_000 + i as i64)
                .with_header("h", Some(vec![i as u8]));
            b.push(r);
        }
        ValidatedBatches::new(b.build(), usize::MAX).expect("valid")
    }

    fn records_of(b: &ValidatedBatches) -> Vec<Record> {
        let v = BatchView::parse(b.bytes(), usize::MAX).expect("one batch");
        records::decode_records(&v).expect("records")
    }

    #[test]
    fn a_batch_changes_codec_and_keeps_everything_else() {
        let codecs = [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
        for from in codecs {
            for to in codecs {
                let sent = batch(from);
                let want = records_of(&sent);
                let sent_meta = sent.batches()[0];
                let got = recompress(sent, to, Some(5), usize::MAX).expect("recompressed");
                let v = BatchView::parse(got.bytes(), usize::MAX).expect("valid CRC and length");
                assert_eq!(v.compression(), to, "{from:?} -> {to:?}");
                assert_eq!(records::decode_records(&v).expect("records"), want, "{from:?} -> {to:?}");
                let m = got.batches()[0];
                assert_eq!(
                    (m.producer_id, m.producer_epoch, m.base_sequence, m.last_offset_delta, m.max_timestamp),
                    (42, 3, 17, 19, sent_meta.max_timestamp)
                );
                assert_eq!(m.attributes & !0x07, sent_meta.attributes & !0x07, "transactional bit kept");
                assert_eq!(v.base_timestamp(), 1_000);
            }
        }
    }

    #[test]
    fn a_batch_that_grows_past_the_limit_is_refused() {
        let sent = batch(Compression::Gzip);
        let limit = sent.len_bytes() + 10;
        let err = recompress(sent, Compression::None, None, limit).expect_err("too large uncompressed");
        assert_eq!(err.0, code::MESSAGE_TOO_LARGE);
    }

    #[test]
    fn the_lz4_level_reaches_the_encoder_unless_it_is_kafkas_default() {
        let b = BrokerConfig::default();
        let cfg = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(level_of(&b, &cfg(&[("compression.type", "lz4")])), None);
        assert_eq!(level_of(&b, &cfg(&[("compression.type", "lz4"), ("compression.lz4.level", "9")])), None);
        assert_eq!(level_of(&b, &cfg(&[("compression.type", "lz4"), ("compression.lz4.level", "12")])), Some(12));
        // Another codec: its own level (zstd's default 3), not lz4's.
        assert_eq!(level_of(&b, &cfg(&[("compression.type", "zstd"), ("compression.lz4.level", "12")])), Some(3));
    }

    #[test]
    fn compression_type_names_map_to_codecs() {
        assert_eq!(codec_of("producer"), None);
        assert_eq!(codec_of("uncompressed"), Some(Compression::None));
        assert_eq!(codec_of("zstd"), Some(Compression::Zstd));
        let broker = BrokerConfig::default();
        let gzip = BTreeMap::from([("compression.type".to_string(), "gzip".to_string())]);
        assert_eq!(level_of(&broker, &gzip), Some(6));
        let mut zstd = BTreeMap::from([("compression.type".to_string(), "zstd".to_string())]);
        zstd.insert("compression.zstd.level".into(), "7".into());
        assert_eq!(level_of(&broker, &zstd), Some(7));
    }
}
