//! Replays every checked-in fuzz input (`fuzz/corpus/<target>/*` and crash inputs under
//! `fuzz/artifacts/<target>/`) through the same property the fuzz target checks (`fuzz/src/lib.rs`),
//! on the stable toolchain: a decoder regression shows up here without cargo-fuzz.

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_corpus_and_crash_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut replayed = 0;
    for (target, check) in checks::TARGETS {
        let mut files = 0;
        for dir in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("corpus entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                let outcome = std::panic::catch_unwind(|| check(&data));
                assert!(outcome.is_ok(), "{target}: {} fails", path.display());
                files += 1;
            }
        }
        assert!(files > 0, "no corpus for fuzz target {target}");
        replayed += files;
    }
    eprintln!("replayed {replayed} fuzz inputs");
}
