//! The checks every protocol's vector directory gets (relay, control): one
//! CBOR item per `.cbor` file with a `.diag` twin; each sample encodes to
//! its vector, each vector decodes and re-encodes byte for byte, each twin
//! parses to the same bytes.
//!
//! `HANDOFF_WRITE_VECTORS=1 cargo test --lib proto` rewrites the `.cbor`
//! files from the samples (and writes a `.diag` where none exists).

use std::path::{Path, PathBuf};

use super::HEADER_LEN;
use super::frame::{FrameMessage, decode_as, encode_message};

/// A vector file's item with its length prefix: a whole frame.
pub(super) fn framed(item: &[u8]) -> Vec<u8> {
    let mut frame = u32::try_from(item.len()).unwrap().to_be_bytes().to_vec();
    frame.extend_from_slice(item);
    frame
}

/// Rewrites the vectors from `samples` when `HANDOFF_WRITE_VECTORS` is set.
fn write_if_asked<M: FrameMessage>(dir: &Path, samples: &[(&str, M)]) {
    if std::env::var_os("HANDOFF_WRITE_VECTORS").is_none() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap();
    for (stem, msg) in samples {
        let item = encode_message(msg).unwrap()[HEADER_LEN..].to_vec();
        std::fs::write(dir.join(format!("{stem}.cbor")), &item).unwrap();
        let diag = dir.join(format!("{stem}.diag"));
        if !diag.exists() {
            let pretty = cbor_diag::parse_bytes(&item).unwrap().to_diag_pretty();
            std::fs::write(diag, pretty + "\n").unwrap();
        }
    }
}

/// Every sample encodes to the vector of its name.
pub(super) fn check_samples_have_vectors<M: FrameMessage>(dir: &Path, samples: &[(&str, M)]) {
    write_if_asked(dir, samples);
    for (stem, msg) in samples {
        let path = dir.join(format!("{stem}.cbor"));
        let item = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (missing vector?)", path.display()));
        assert_eq!(encode_message(msg).unwrap(), framed(&item), "{stem}");
    }
}

/// Every `.cbor` in `dir` decoded, after checking that it re-encodes byte
/// for byte; as many as there are samples.
pub(super) fn decode_every_vector<M: FrameMessage>(
    dir: &Path,
    samples: usize,
) -> Vec<(PathBuf, M)> {
    let mut decoded = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("cbor") {
            continue;
        }
        let frame = framed(&std::fs::read(&path).unwrap());
        let msg: M = decode_as(&frame).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(encode_message(&msg).unwrap(), frame, "{}", path.display());
        decoded.push((path, msg));
    }
    assert_eq!(
        decoded.len(),
        samples,
        "a vector without a sample, or the reverse"
    );
    decoded
}

/// Every sample's `.diag` twin parses to the bytes of its `.cbor`.
pub(super) fn check_diag_twins<'a>(dir: &Path, stems: impl IntoIterator<Item = &'a str>) {
    for stem in stems {
        let item = std::fs::read(dir.join(format!("{stem}.cbor"))).unwrap();
        let path = dir.join(format!("{stem}.diag"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (missing twin?)", path.display()));
        let parsed =
            cbor_diag::parse_diag(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            parsed.to_bytes(),
            item,
            "{} differs from its .cbor",
            path.display()
        );
    }
}
