//! Runs the fuzz target's body on random bytes and on mutated valid batches in every test run.

use engine::records::{BatchBuilder, Record};
use engine::Compression;
use proptest::prelude::*;

fn valid_batches() -> Vec<Vec<u8>> {
    [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .map(|c| {
            let mut b = BatchBuilder::new(c, 1_000);
            for i in 0..5u8 {
                b.push(
                    Record::new(Some(vec![i]), Some(vec![i; 40]))
                        .with_timestamp(1_000 + i64::from(i))
                        .with_header("h", None),
                );
            }
            b.build().to_vec()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        engine::fuzzing::decode_everything(&data);
    }

    #[test]
    fn mutated_batches(which in 0usize..5, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<usize>()) {
        let mut data = valid_batches()[which].clone();
        for (pos, byte) in flips {
            let i = pos % data.len();
            data[i] = byte;
        }
        let keep = data.len() - cut % 8;
        data.truncate(keep);
        engine::fuzzing::decode_everything(&data);
    }

    #[test]
    fn mutated_records_with_fixed_crc(which in 0usize..5, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        // Damage behind a valid CRC reaches the record decoders and codecs.
        let mut data = valid_batches()[which].clone();
        for (pos, byte) in flips {
            let i = 61 + pos % (data.len() - 61);
            data[i] = byte;
        }
        let crc = engine::batch::compute_crc(&data);
        data[17..21].copy_from_slice(&crc.to_be_bytes());
        engine::fuzzing::decode_everything(&data);
    }
}
