//! Keeps the core pure: no clock, network, file system, threads, OS randomness or iteration-order
//! surprises may creep into `crates/raft/src` or `crates/kv/src`. Determinism of the simulator, and
//! byte-identical replicas, depend on it.

const FORBIDDEN: &[&str] = &[
    "std::time",
    "Instant",
    "SystemTime",
    "std::net",
    "std::fs",
    "std::thread",
    "std::process",
    "thread_rng",
    "rand::",
    "HashMap",
    "HashSet",
    "tokio",
];

#[test]
fn core_sources_use_no_io_clock_threads_or_unordered_maps() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    check_pure(&crates.join("raft/src"), 10);
    check_pure(&crates.join("kv/src"), 5);
}

fn check_pure(source_dir: &std::path::Path, expected_files: usize) {
    let mut offences = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(source_dir).expect("the source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|extension| extension == "rs") {
            files += 1;
            let text = std::fs::read_to_string(&path).expect("a source file is readable");
            for (number, line) in text.lines().enumerate() {
                for word in FORBIDDEN {
                    if line.contains(word) {
                        offences.push(format!("{}:{}: {word}", path.display(), number + 1));
                    }
                }
            }
        }
    }
    assert!(files >= expected_files, "expected the sources in {}, found {files} files", source_dir.display());
    assert!(offences.is_empty(), "the core must stay free of I/O and nondeterminism:\n{}", offences.join("\n"));
}
