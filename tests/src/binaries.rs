//! The workspace's binaries for tests that run them as processes.
//!
//! `cargo test -p pingji-tests` does not build other packages' binaries, so
//! under cargo (`CARGO` is set) a binary is built first with `cargo build -p
//! PACKAGE --bin NAME` into this test's target directory (a no-op when
//! fresh); the file is then `target/<profile>/NAME`, next to `deps/`.
//!
//! That build runs once per binary and test process, and without the
//! variables cargo sets for the test itself (`CARGO_MANIFEST_DIR`,
//! `CARGO_PKG_NAME`, …): build scripts that watch them (ring's does) would
//! otherwise see them change between the outer `cargo test` and this build,
//! and each would rebuild ring, rustls, tonic and the dispatcher in turn
//! (about 30 s, once in the first test and again at the next `cargo test`).

use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::process::Command;
use tokio::sync::OnceCell;

/// Variables cargo sets for a test process (or a build script), which the
/// nested build must not inherit.
fn set_by_cargo_for_the_test(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_CRATE_NAME",
        "CARGO_BIN_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "OUT_DIR",
    ];
    EXACT.contains(&name) || name.starts_with("CARGO_PKG_") || name.starts_with("CARGO_BIN_EXE_")
}

/// Finds `binary` of `package`, building it first (once per test process)
/// when run under cargo.
pub async fn workspace_binary(package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    static BUILT: Mutex<Option<HashMap<String, Arc<OnceCell<PathBuf>>>>> = Mutex::new(None);
    let cell = {
        let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        built.get_or_insert_with(HashMap::new).entry(format!("{package}/{binary}")).or_default().clone()
    };
    cell.get_or_try_init(|| build(package, binary)).await.cloned()
}

async fn build(package: &str, binary: &str) -> anyhow::Result<PathBuf> {
    let test_exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("unexpected test executable path {}", test_exe.display()))?
        .to_path_buf();
    let path = profile_dir.join(format!("{binary}{}", std::env::consts::EXE_SUFFIX));
    if let Some(cargo) = std::env::var_os("CARGO") {
        let target_dir = profile_dir.parent().context("the profile directory has no parent")?;
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", package, "--bin", binary, "--target-dir"]).arg(target_dir);
        if profile_dir.file_name().is_some_and(|name| name == "release") {
            build.arg("--release");
        }
        build.current_dir(env!("CARGO_MANIFEST_DIR"));
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_by_cargo_for_the_test) {
                build.env_remove(&name);
            }
        }
        let status = build.status().await.context("cannot run cargo build")?;
        anyhow::ensure!(status.success(), "cargo build -p {package} --bin {binary} failed: {status}");
    }
    anyhow::ensure!(path.is_file(), "the {binary} binary is missing at {}; run cargo build -p {package}", path.display());
    Ok(path)
}
