use super::*;

#[test]
fn empty_root_is_sha256_of_nothing() {
    assert_eq!(
        Hash::empty().to_hex(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn leaf_and_node_hashes_match_rfc6962_vectors() {
    // Leaf inputs "" and 0x00 and their parent, from the RFC 6962 test data.
    let l0 = leaf_hash(b"");
    let l1 = leaf_hash(&[0]);
    assert_eq!(
        l0.to_hex(),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );
    assert_eq!(
        l1.to_hex(),
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
    );
    assert_eq!(
        node_hash(&l0, &l1).to_hex(),
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
    );
}

#[test]
fn hex_and_base64_round_trip() {
    let h = leaf_hash(b"x");
    assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
    assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
    assert_eq!(Hash::from_base64(&h.to_base64()), Some(h));
    assert_eq!(Hash::from_hex("zz"), None);
    assert_eq!(Hash::from_base64("AAAA"), None);
}
