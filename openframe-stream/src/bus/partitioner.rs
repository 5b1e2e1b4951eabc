//! Key → partition mapping shared by every backend.

/// The partition a keyed record goes to: Kafka's default partitioner (`murmur2(key) & 0x7fffffff
/// % partitions`), so the in-process bus, the Kafka backend (configured with librdkafka's
/// `murmur2_random` partitioner) and Java producers agree. `partitions` of 0 is treated as 1.
///
/// ```
/// use openframe_stream::bus::partition_for_key;
/// let p = partition_for_key(b"machine-1", 6);
/// assert!(p < 6);
/// assert_eq!(p, partition_for_key(b"machine-1", 6));
/// ```
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let hash = murmur2(key) & 0x7fff_ffff;
    hash % partitions.max(1)
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), as an unsigned 32-bit value.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Kafka hashes the length as a Java int; keys longer than 4 GiB cannot occur in practice.
    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        // From Kafka's `UtilsTest.testMurmur2`.
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input}");
        }
    }

    #[test]
    fn keys_stay_in_range() {
        for n in 1..20u32 {
            for key in [&b""[..], b"a", b"machine-42", b"\xff\xfe\xfd\xfc\xfb"] {
                assert!(partition_for_key(key, n) < n);
            }
        }
        assert_eq!(partition_for_key(b"x", 0), 0);
    }
}
